//! AWS profiles: the credentials, region and endpoint a user set up for the AWS CLI and SDKs in
//! `~/.aws/config` and `~/.aws/credentials`, chosen by `AWS_PROFILE`, for runs over `s3://`.
//!
//! The store crate reads the `AWS_*` variables, web identity and instance credentials itself, but
//! not these files, so fanout reads them here the way the AWS CLI does:
//! - the files are `$AWS_CONFIG_FILE` (default `~/.aws/config`, sections `[default]` or
//!   `[profile NAME]`) and `$AWS_SHARED_CREDENTIALS_FILE` (default `~/.aws/credentials`,
//!   sections `[NAME]`); a profile is the merge of its sections in both, the credentials file
//!   winning; keys are matched without regard to case, and an indented key (a sub-setting such
//!   as `s3 =` followed by `  endpoint_url = ...`) is not the profile's own;
//! - the profile is `$AWS_PROFILE`, else `default`; a profile named by `AWS_PROFILE` that is in
//!   neither file is an error (a missing `default` is not: the files may not exist at all);
//! - environment variables win over the profile: `AWS_ACCESS_KEY_ID` with
//!   `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`), `AWS_REGION` (else
//!   `AWS_DEFAULT_REGION`), `AWS_ENDPOINT_URL_S3` (else `AWS_ENDPOINT_URL`);
//! - credentials: the environment's, else the profile's static keys, else its
//!   `credential_process` (run without a shell, its JSON `Version: 1` output read), else none
//!   (the store crate then looks for container and instance credentials). A profile that relies
//!   on what fanout cannot do (assume role, SSO, web identity) is an error rather than a
//!   silent fall-through to other credentials. `services` sections are not read.
//!
//! Nothing here holds a secret longer than the returned value, and its `Debug` form shows none.

// Used by s3:// runs, which come next; until then only the tests call it.
#![allow(dead_code)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use anyhow::{anyhow, bail, Context};
use ini::{Ini, ParseOption};

/// Where a profile's credentials came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// None found: the store crate's own chain (container, instance metadata) decides.
    None,
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    Environment,
    /// Static keys of the profile in this file.
    File(PathBuf),
    /// The profile's `credential_process`.
    Process,
}

/// What a user's AWS setup says for one profile, environment variables applied.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct AwsProfile {
    /// The profile's name (`AWS_PROFILE`, else `default`).
    pub(crate) name: String,
    pub(crate) access_key_id: Option<String>,
    pub(crate) secret_access_key: Option<String>,
    pub(crate) session_token: Option<String>,
    /// When credentials from `credential_process` stop being valid (none: they do not expire).
    pub(crate) expiration: Option<SystemTime>,
    pub(crate) region: Option<String>,
    pub(crate) endpoint_url: Option<String>,
    /// The profile's `credential_process` command, whether or not it was needed.
    pub(crate) credential_process: Option<String>,
    pub(crate) source: Source,
}

impl fmt::Debug for AwsProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |s: &Option<String>| s.as_ref().map(|_| "<hidden>");
        f.debug_struct("AwsProfile")
            .field("name", &self.name)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("session_token", &hidden(&self.session_token))
            .field("expiration", &self.expiration)
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("credential_process", &self.credential_process)
            .field("source", &self.source)
            .finish()
    }
}

/// Profile keys that need what fanout does not do (assume role, SSO, web identity).
const UNSUPPORTED: [(&str, &str); 5] = [
    ("role_arn", "assume role"),
    ("sso_session", "SSO"),
    ("sso_start_url", "SSO"),
    ("sso_account_id", "SSO"),
    ("web_identity_token_file", "web identity"),
];

/// Reads the AWS profile that `env` (a variable lookup) names, from the files under `home` (or
/// those `AWS_CONFIG_FILE` and `AWS_SHARED_CREDENTIALS_FILE` name), environment variables
/// winning. Runs the profile's `credential_process` when it holds the only credentials.
pub(crate) fn resolve(
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> anyhow::Result<AwsProfile> {
    // An empty variable counts as unset, as for the AWS CLI.
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    let named = var("AWS_PROFILE");
    let name = named.clone().unwrap_or_else(|| "default".to_string());
    let config = file_path(var("AWS_CONFIG_FILE"), home, "config");
    let credentials = file_path(var("AWS_SHARED_CREDENTIALS_FILE"), home, "credentials");

    let from_config = match &config {
        Some(path) => read_profile(path, &name, Kind::Config)?,
        None => None,
    };
    let from_credentials = match &credentials {
        Some(path) => read_profile(path, &name, Kind::Credentials)?,
        None => None,
    };
    if named.is_some() && from_config.is_none() && from_credentials.is_none() {
        bail!(
            "AWS profile {name:?} (AWS_PROFILE) is in neither {} nor {}",
            shown(config.as_deref()),
            shown(credentials.as_deref())
        );
    }
    // The credentials file wins key by key, and names the file the static keys came from.
    let mut profile = Settings::default();
    for settings in [from_config, from_credentials].into_iter().flatten() {
        profile.merge(settings);
    }

    let mut out = AwsProfile {
        name,
        access_key_id: None,
        secret_access_key: None,
        session_token: None,
        expiration: None,
        region: var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .or_else(|| profile.get("region")),
        endpoint_url: var("AWS_ENDPOINT_URL_S3")
            .or_else(|| var("AWS_ENDPOINT_URL"))
            .or_else(|| profile.get("endpoint_url")),
        credential_process: profile.get("credential_process"),
        source: Source::None,
    };
    credentials_of(&var, &profile, &mut out)?;
    Ok(out)
}

/// Fills in `out`'s credentials: the environment's, the profile's static keys, or its
/// credential process, in that order.
fn credentials_of(
    var: &dyn Fn(&str) -> Option<String>,
    profile: &Settings,
    out: &mut AwsProfile,
) -> anyhow::Result<()> {
    match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => {
            out.access_key_id = Some(id);
            out.secret_access_key = Some(secret);
            out.session_token = var("AWS_SESSION_TOKEN");
            out.source = Source::Environment;
            return Ok(());
        }
        (Some(_), None) => bail!("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"),
        (None, Some(_)) => bail!("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not"),
        (None, None) => {}
    }
    let where_ = |key: &str| {
        profile
            .origin(key)
            .map_or_else(String::new, |p| format!(" in {}", p.display()))
    };
    match (
        profile.get("aws_access_key_id"),
        profile.get("aws_secret_access_key"),
    ) {
        (Some(id), Some(secret)) => {
            out.access_key_id = Some(id);
            out.secret_access_key = Some(secret);
            out.session_token = profile.get("aws_session_token");
            out.source = Source::File(profile.origin("aws_access_key_id").unwrap().to_path_buf());
            return Ok(());
        }
        (Some(_), None) => bail!(
            "AWS profile {:?} has aws_access_key_id{} but no aws_secret_access_key",
            out.name,
            where_("aws_access_key_id")
        ),
        (None, Some(_)) => bail!(
            "AWS profile {:?} has aws_secret_access_key{} but no aws_access_key_id",
            out.name,
            where_("aws_secret_access_key")
        ),
        (None, None) => {}
    }
    if let Some(command) = &out.credential_process {
        let got = run_process(command)
            .with_context(|| format!("credential_process of AWS profile {:?}", out.name))?;
        out.access_key_id = Some(got.access_key_id);
        out.secret_access_key = Some(got.secret_access_key);
        out.session_token = got.session_token;
        out.expiration = got.expiration;
        out.source = Source::Process;
        return Ok(());
    }
    if let Some((key, what)) = UNSUPPORTED.iter().find(|(k, _)| profile.get(k).is_some()) {
        bail!(
            "AWS profile {:?} uses {key}{} ({what}), which fanout does not support: \
             give it static keys or a credential_process, or set AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY",
            out.name,
            where_(key)
        );
    }
    Ok(())
}

/// Which of the two files: they name a profile's section differently.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Config,
    Credentials,
}

/// A file's path: the variable's (a leading `~/` is the home directory), else `~/.aws/NAME`.
fn file_path(var: Option<String>, home: Option<&Path>, name: &str) -> Option<PathBuf> {
    match var {
        Some(v) => match (v.strip_prefix("~/"), home) {
            (Some(rest), Some(home)) => Some(home.join(rest)),
            _ => Some(PathBuf::from(v)),
        },
        None => home.map(|h| h.join(".aws").join(name)),
    }
}

fn shown(path: Option<&Path>) -> String {
    path.map_or_else(|| "(no file)".to_string(), |p| p.display().to_string())
}

/// A profile's keys (lowercase) and values from one file, or after merging both, with the file
/// each came from.
#[derive(Default)]
struct Settings {
    values: Vec<(String, String, PathBuf)>,
}

impl Settings {
    fn set(&mut self, key: &str, value: &str, path: &Path) {
        let key = key.to_ascii_lowercase();
        self.values.retain(|(k, _, _)| *k != key);
        self.values
            .push((key, value.to_string(), path.to_path_buf()));
    }

    fn merge(&mut self, other: Settings) {
        for (key, value, path) in other.values {
            self.set(&key, &value, &path);
        }
    }

    /// A key's value; an empty value counts as unset.
    fn get(&self, key: &str) -> Option<String> {
        self.values
            .iter()
            .find(|(k, v, _)| k == key && !v.is_empty())
            .map(|(_, v, _)| v.clone())
    }

    fn origin(&self, key: &str) -> Option<&Path> {
        self.values
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, p)| p.as_path())
    }
}

/// The profile `name` of one file, or None when the file or the profile is absent.
fn read_profile(path: &Path, name: &str, kind: Kind) -> anyhow::Result<Option<Settings>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow!(e).context(format!("cannot read {}", path.display()))),
    };
    // Values are taken as written (no quotes or escapes: a Windows path keeps its
    // backslashes), and an indented key keeps its indentation, so it is not taken for one of
    // the profile's own.
    let options = ParseOption {
        enabled_quote: false,
        enabled_escape: false,
        enabled_indented_mutiline_value: false,
        enabled_preserve_key_leading_whitespace: true,
    };
    let ini = Ini::load_from_str_opt(&text, options)
        .map_err(|e| anyhow!("{} line {}: {}", path.display(), e.line, e.msg))?;
    let mut found = None;
    // `[profile default]` in the config file wins over `[default]`, as for the AWS CLI.
    for explicit in [false, true] {
        for (section, props) in &ini {
            if section.is_some_and(|s| names(s, kind, explicit) == Some(name)) {
                let settings: &mut Settings = found.get_or_insert_with(Settings::default);
                for (key, value) in props {
                    if !key.starts_with([' ', '\t']) {
                        settings.set(key.trim(), value.trim(), path);
                    }
                }
            }
        }
    }
    Ok(found)
}

/// The profile a section header names in this kind of file; `explicit` asks for the config
/// file's `[profile NAME]` form, else its bare `[default]` (the credentials file has only the
/// bare form).
fn names(section: &str, kind: Kind, explicit: bool) -> Option<&str> {
    let section = section.trim();
    match (kind, explicit) {
        (Kind::Credentials, false) => Some(section),
        (Kind::Credentials, true) => None,
        (Kind::Config, false) => (section == "default").then_some(section),
        (Kind::Config, true) => section
            .strip_prefix("profile")
            .filter(|rest| rest.starts_with([' ', '\t']))
            .map(str::trim),
    }
}

/// Credentials a `credential_process` printed.
struct Processed {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    expiration: Option<SystemTime>,
}

/// Runs a `credential_process` command (split as a POSIX shell would, run without one; its
/// standard error is the user's) and reads its JSON output, `Version` 1.
fn run_process(command: &str) -> anyhow::Result<Processed> {
    let argv = shlex::split(command)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| anyhow!("cannot split {command:?} into a command and its arguments"))?;
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {:?}", argv[0]))?;
    if !out.status.success() {
        bail!("{:?} failed ({})", argv[0], out.status);
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| anyhow!("{:?} printed no JSON object: {e}", argv[0]))?;
    if json.get("Version").and_then(serde_json::Value::as_u64) != Some(1) {
        bail!(
            "{:?} printed no \"Version\": 1 (the only version there is)",
            argv[0]
        );
    }
    let text = |key: &str| {
        json.get(key)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
    };
    let required = |key: &str| {
        text(key)
            .map(str::to_string)
            .ok_or_else(|| anyhow!("{:?} printed no {key}", argv[0]))
    };
    let expiration = text("Expiration")
        .map(|e| {
            expiry(e).ok_or_else(|| anyhow!("{:?} printed an unreadable Expiration {e:?}", argv[0]))
        })
        .transpose()?;
    Ok(Processed {
        access_key_id: required("AccessKeyId")?,
        secret_access_key: required("SecretAccessKey")?,
        session_token: text("SessionToken").map(str::to_string),
        expiration,
    })
}

/// An RFC 3339 time in UTC (`2026-12-07T08:00:00Z`, also with `+00:00` or fractions).
fn expiry(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(text).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    /// A home directory with these `.aws/config` and `.aws/credentials` (None: no such file).
    fn home(config: Option<&str>, credentials: Option<&str>) -> tempfile::TempDir {
        let home = tempfile::tempdir().unwrap();
        fs::create_dir(home.path().join(".aws")).unwrap();
        for (name, text) in [("config", config), ("credentials", credentials)] {
            if let Some(text) = text {
                fs::write(home.path().join(".aws").join(name), text).unwrap();
            }
        }
        home
    }

    fn with(vars: &[(&str, &str)], home: &Path) -> anyhow::Result<AwsProfile> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        resolve(&|name| vars.get(name).cloned(), Some(home))
    }

    fn keys(p: &AwsProfile) -> (Option<&str>, Option<&str>, Option<&str>) {
        (
            p.access_key_id.as_deref(),
            p.secret_access_key.as_deref(),
            p.session_token.as_deref(),
        )
    }

    const CONFIG: &str = "\
# the user's config
[default]
region = eu-west-1
endpoint_url = http://127.0.0.1:9000
aws_access_key_id = from-config

[profile dev]
region = us-east-2
; a comment
credential_process = /bin/false
s3 =
  endpoint_url = http://only-for-s3.example
";

    const CREDENTIALS: &str = "\
[default]
aws_access_key_id = AKIDEFAULT
aws_secret_access_key = secret/with+chars=
aws_session_token = token

[dev]
AWS_ACCESS_KEY_ID = AKIDEV
Aws_Secret_Access_Key = devsecret
";

    #[test]
    fn the_default_profile_merges_both_files_the_credentials_file_winning() {
        let h = home(Some(CONFIG), Some(CREDENTIALS));
        let p = with(&[], h.path()).unwrap();
        assert_eq!(p.name, "default");
        assert_eq!(
            keys(&p),
            (
                Some("AKIDEFAULT"),
                Some("secret/with+chars="),
                Some("token")
            )
        );
        assert_eq!(p.region.as_deref(), Some("eu-west-1"));
        assert_eq!(p.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(p.source, Source::File(h.path().join(".aws/credentials")));
        assert_eq!(p.credential_process, None);
    }

    #[test]
    fn a_named_profile_reads_profile_sections_keys_in_any_case_and_not_indented_keys() {
        let h = home(Some(CONFIG), Some(CREDENTIALS));
        let p = with(&[("AWS_PROFILE", "dev")], h.path()).unwrap();
        assert_eq!(p.name, "dev");
        // Static keys win over the profile's credential_process (which would fail).
        assert_eq!(keys(&p), (Some("AKIDEV"), Some("devsecret"), None));
        assert_eq!(p.credential_process.as_deref(), Some("/bin/false"));
        assert_eq!(p.region.as_deref(), Some("us-east-2"));
        // `  endpoint_url` under `s3 =` is a sub-setting, not the profile's endpoint.
        assert_eq!(p.endpoint_url, None);
    }

    #[test]
    fn environment_variables_win_over_the_profile() {
        let h = home(Some(CONFIG), Some(CREDENTIALS));
        let env = [
            ("AWS_ACCESS_KEY_ID", "AKIENV"),
            ("AWS_SECRET_ACCESS_KEY", "envsecret"),
            ("AWS_REGION", "ap-south-1"),
            ("AWS_DEFAULT_REGION", "ignored-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
        ];
        let p = with(&env, h.path()).unwrap();
        // The profile's session token does not go with the environment's keys.
        assert_eq!(keys(&p), (Some("AKIENV"), Some("envsecret"), None));
        assert_eq!(p.source, Source::Environment);
        assert_eq!(p.region.as_deref(), Some("ap-south-1"));
        assert_eq!(p.endpoint_url.as_deref(), Some("http://127.0.0.1:1"));

        let p = with(
            &[
                ("AWS_DEFAULT_REGION", "ca-central-1"),
                ("AWS_ENDPOINT_URL_S3", "http://s3:2"),
            ],
            h.path(),
        )
        .unwrap();
        assert_eq!(p.region.as_deref(), Some("ca-central-1"));
        assert_eq!(p.endpoint_url.as_deref(), Some("http://s3:2"));
        // Empty variables count as unset.
        let p = with(&[("AWS_REGION", ""), ("AWS_PROFILE", "")], h.path()).unwrap();
        assert_eq!(
            (p.name.as_str(), p.region.as_deref()),
            ("default", Some("eu-west-1"))
        );
    }

    #[test]
    fn a_named_profile_that_does_not_exist_is_one_clear_error() {
        let h = home(Some(CONFIG), Some(CREDENTIALS));
        let e = with(&[("AWS_PROFILE", "prod")], h.path()).unwrap_err();
        let text = format!("{e:#}");
        assert!(
            text.contains("\"prod\"") && text.contains(".aws/config"),
            "{text}"
        );
        assert!(!text.contains('\n'), "{text}");
        // Even with keys in the environment: the user named a profile that is not there.
        let env = [
            ("AWS_PROFILE", "prod"),
            ("AWS_ACCESS_KEY_ID", "a"),
            ("AWS_SECRET_ACCESS_KEY", "b"),
        ];
        assert!(with(&env, h.path()).is_err());
        // In the config file a profile's section is `[profile NAME]`: a bare `[NAME]` is not it.
        let h = home(Some("[dev]\nregion = x\n"), None);
        assert!(with(&[("AWS_PROFILE", "dev")], h.path()).is_err());
    }

    #[test]
    fn no_files_and_no_variables_is_an_empty_default_profile() {
        let h = home(None, None);
        let p = with(&[], h.path()).unwrap();
        assert_eq!(keys(&p), (None, None, None));
        assert_eq!(
            (p.region, p.endpoint_url, p.source),
            (None, None, Source::None)
        );
        let p = resolve(&|_| None, None).unwrap();
        assert_eq!(p.source, Source::None);
    }

    #[test]
    fn the_file_variables_name_other_files() {
        let h = home(Some(CONFIG), Some(CREDENTIALS));
        fs::write(h.path().join("cfg"), "[profile x]\nregion = r1\n").unwrap();
        let creds = h.path().join("creds");
        fs::write(
            &creds,
            "[x]\naws_access_key_id = k\naws_secret_access_key = s\n",
        )
        .unwrap();
        let env = [
            ("AWS_PROFILE", "x"),
            ("AWS_CONFIG_FILE", "~/cfg"),
            ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()),
        ];
        let p = with(&env, h.path()).unwrap();
        assert_eq!((keys(&p).0, p.region.as_deref()), (Some("k"), Some("r1")));
    }

    #[test]
    fn profile_default_in_the_config_file_wins_over_a_bare_default_section() {
        let h = home(
            Some("[profile default]\nregion = explicit\n[default]\nregion = bare\n"),
            None,
        );
        assert_eq!(
            with(&[], h.path()).unwrap().region.as_deref(),
            Some("explicit")
        );
        let h = home(Some("[  profile   spaced  ]\nregion = r\n"), None);
        assert_eq!(
            with(&[("AWS_PROFILE", "spaced")], h.path())
                .unwrap()
                .region
                .as_deref(),
            Some("r")
        );
    }

    #[test]
    fn half_a_key_pair_and_unsupported_credentials_are_errors() {
        let h = home(None, Some("[default]\naws_access_key_id = only\n"));
        let e = format!("{:#}", with(&[], h.path()).unwrap_err());
        assert!(
            e.contains("aws_secret_access_key") && e.contains("credentials"),
            "{e}"
        );
        assert!(with(&[("AWS_ACCESS_KEY_ID", "a")], h.path()).is_err());

        let h = home(
            Some("[profile r]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default\n"),
            None,
        );
        let e = format!("{:#}", with(&[("AWS_PROFILE", "r")], h.path()).unwrap_err());
        assert!(e.contains("role_arn") && e.contains("assume role"), "{e}");
        // Keys in the environment need no role.
        let env = [
            ("AWS_PROFILE", "r"),
            ("AWS_ACCESS_KEY_ID", "a"),
            ("AWS_SECRET_ACCESS_KEY", "b"),
        ];
        assert_eq!(with(&env, h.path()).unwrap().source, Source::Environment);
    }

    /// A credential_process script in `dir` that prints `json` (and its arguments to a file).
    fn process(dir: &Path, json: &str, status: i32) -> String {
        let script = dir.join("creds helper.sh");
        let body = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\ncat <<'EOF'\n{json}\nEOF\nexit {status}\n",
            dir.join("args").display()
        );
        fs::write(&script, body).unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        format!("\"{}\" --profile 'a b'", script.display())
    }

    #[test]
    fn credential_process_output_gives_the_credentials() {
        let h = home(None, None);
        let json = r#"{"Version": 1, "AccessKeyId": "AKIPROC", "SecretAccessKey": "procsecret",
            "SessionToken": "proctoken", "Expiration": "2030-01-02T03:04:05Z"}"#;
        let command = process(h.path(), json, 0);
        fs::write(
            h.path().join(".aws/config"),
            format!("[default]\nregion = r\ncredential_process = {command}\n"),
        )
        .unwrap();
        let p = with(&[], h.path()).unwrap();
        assert_eq!(
            keys(&p),
            (Some("AKIPROC"), Some("procsecret"), Some("proctoken"))
        );
        assert_eq!(p.source, Source::Process);
        assert_eq!(
            p.expiration,
            Some(UNIX_EPOCH + Duration::from_secs(1_893_553_445))
        );
        // Split as a shell would, run without one.
        assert_eq!(
            fs::read_to_string(h.path().join("args")).unwrap(),
            "--profile\na b\n"
        );
        // Keys in the environment: the process is not run.
        fs::remove_file(h.path().join("args")).unwrap();
        let env = [("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "b")];
        assert_eq!(with(&env, h.path()).unwrap().source, Source::Environment);
        assert!(!h.path().join("args").exists());
    }

    #[test]
    fn a_failing_or_unreadable_credential_process_is_an_error() {
        let cases = [
            (
                r#"{"Version": 1, "AccessKeyId": "a", "SecretAccessKey": "b"}"#,
                3,
                "failed",
            ),
            (
                r#"{"Version": 2, "AccessKeyId": "a", "SecretAccessKey": "b"}"#,
                0,
                "Version",
            ),
            (
                r#"{"Version": 1, "AccessKeyId": "a"}"#,
                0,
                "SecretAccessKey",
            ),
            ("not json", 0, "JSON"),
            (
                r#"{"Version": 1, "AccessKeyId": "a", "SecretAccessKey": "b", "Expiration": "soon"}"#,
                0,
                "Expiration",
            ),
        ];
        for (json, status, needle) in cases {
            let h = home(None, None);
            let command = process(h.path(), json, status);
            fs::write(
                h.path().join(".aws/config"),
                format!("[default]\ncredential_process = {command}\n"),
            )
            .unwrap();
            let e = format!("{:#}", with(&[], h.path()).unwrap_err());
            assert!(
                e.contains(needle) && e.contains("credential_process"),
                "{json}: {e}"
            );
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn a_file_that_is_not_ini_is_an_error_naming_its_line() {
        let h = home(Some("[default]\nregion = x\n[profile broken\n"), None);
        let e = format!("{:#}", with(&[], h.path()).unwrap_err());
        assert!(e.contains(".aws/config line ") && !e.contains('\n'), "{e}");
    }

    #[test]
    fn the_debug_form_shows_no_secret() {
        let h = home(None, Some(CREDENTIALS));
        let shown = format!("{:?}", with(&[], h.path()).unwrap());
        assert!(
            shown.contains("AKIDEFAULT") && shown.contains("<hidden>"),
            "{shown}"
        );
        assert!(
            !shown.contains("secret/with") && !shown.contains("\"token\""),
            "{shown}"
        );
    }
}
