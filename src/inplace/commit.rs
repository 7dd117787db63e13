//! After a job: `{out}` is checked (it is a new regular file of fanout's user, on the
//! input's file system, and passes the verify mode, and the input did not change), given the
//! replaced file's owner, metadata and mode, and renamed over the target through the
//! directory's descriptor; or it is removed, whatever the command made of it.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::job::{Outcome, Prepared, Problem};
use super::node::{dir_of, euid, open_in, private_dir, reason, take_name, Node, MAX_TREE_DEPTH};
use super::prepare::InPlace;
use crate::parquet::{self, Verify};

impl InPlace {
    /// Removes `{out}` before a retry or after a failure; in a directory other users can add
    /// names to, takes the name again at once for the next attempt.
    pub(crate) fn discard(p: &Prepared) {
        let _ = remove_out(p);
        if p.taken.get().is_some() {
            p.taken.set(take_name(&p.dir, &p.out_name).ok());
        }
    }

    /// Ends an in-place job: verify and replace when `succeeded`, else keep the original.
    #[expect(
        clippy::needless_pass_by_value,
        reason = "finishing consumes the job's preparation: its lock is released when it ends"
    )]
    pub(crate) fn finish(p: Prepared, succeeded: bool) -> Outcome {
        let mut outcome = Outcome {
            input_bytes: Some(p.before.size),
            output_bytes: Node::at(&p.dir, &p.out_name)
                .ok()
                .filter(Node::is_file)
                .map(|n| n.size),
            rows_in: p.input_footer.as_ref().map(|f| f.rows),
            ..Outcome::default()
        };
        if !succeeded {
            let _ = remove_out(&p);
            return outcome;
        }
        let out = match Self::check(&p, &mut outcome) {
            Ok(out) => out,
            Err(problem) => {
                outcome.problem = Some(match remove_out(&p) {
                    Ok(()) => problem,
                    Err(left) => problem.and(&left),
                });
                return outcome;
            }
        };
        match commit(&p, &out) {
            Ok((created, not_kept)) => {
                outcome.replaced = true;
                outcome.created = created;
                if !not_kept.is_empty() {
                    outcome.note = Some(format!("not kept: {}", not_kept.join(", ")));
                }
            }
            Err(Step::Before(e)) => {
                let _ = remove_out(&p);
                outcome.problem = Some(Problem::Failed(e));
            }
            // The name `{out}` is gone: nothing of fanout's is left to remove.
            Err(Step::After(e)) => outcome.problem = Some(Problem::Failed(e)),
        }
        outcome
    }

    /// Opens `{out}` and checks it and the input; returns the output to commit.
    fn check(p: &Prepared, outcome: &mut Outcome) -> Result<File, Problem> {
        let out = match open_in(&p.dir, &p.out_name) {
            Ok(file) => file,
            Err(Errno::NOENT) => {
                return Err(Problem::Invalid(format!(
                    "the command exited 0 but did not write {{out}} ({})",
                    p.out.display()
                )))
            }
            Err(Errno::LOOP) => {
                return Err(Problem::Invalid(
                    "{out} is a symbolic link, not a file; only a file written at {out} can replace the input".into(),
                ))
            }
            Err(e) => return Err(Problem::Failed(format!("opening {{out}}: {}", reason(e)))),
        };
        let node = Node::of(&out).map_err(|e| Problem::Failed(reason(e)))?;
        if !node.is_file() {
            return Err(Problem::Invalid(
                "the command wrote {out} as a directory or other non-file; only a single file can replace the input".into(),
            ));
        }
        if node.nlink != 1 {
            return Err(Problem::Invalid(format!(
                "{{out}} is a hard link ({} names of one file), not a new file; only a new file can replace the input",
                node.nlink
            )));
        }
        // Only a file made by fanout's own user: anyone else's could carry their content into
        // a file that fanout is about to give the input's owner and mode.
        if node.uid != euid() {
            return Err(Problem::Failed(format!(
                "{{out}} belongs to user id {}, not to the user fanout runs as; not trusted to replace the input",
                node.uid
            )));
        }
        if node.dev != p.dir_node.dev {
            return Err(Problem::Failed(
                "{out} is on another file system than the input".into(),
            ));
        }
        outcome.output_bytes = Some(node.size);
        if p.verify == Verify::Exists && node.size == 0 {
            return Err(Problem::Invalid("the output is empty".into()));
        }
        if let Some(input) = &p.input_footer {
            let output = parquet::read_footer_of(&out)
                .map_err(|e| Problem::Invalid(format!("output: {e}")))?;
            outcome.rows_out = Some(output.rows);
            parquet::compare(p.verify, input, &output).map_err(Problem::Invalid)?;
        } else if p.verify.reads_parquet() {
            // Nothing to compare with: the output alone must be sound parquet, with rows
            // when its input had any bytes (a mode that lets the row count change excepted).
            let output = parquet::read_footer_of(&out)
                .map_err(|e| Problem::Invalid(format!("output: {e}")))?;
            outcome.rows_out = Some(output.rows);
            if output.rows == 0 && p.before.size > 0 && p.verify != Verify::ParquetReadable {
                return Err(Problem::Invalid(format!(
                    "the output has no rows, but its input is not empty ({} bytes)",
                    p.before.size
                )));
            }
        }
        let now = Node::of(&p.input).map_err(|e| Problem::Failed(reason(e)))?;
        if (now.size, now.mtime_ns) != (p.before.size, p.before.mtime_ns) {
            return Err(Problem::Failed(
                "the input changed while the job ran; not replaced".into(),
            ));
        }
        let (input_dir, input_name) = p.input_entry();
        if !Node::at(input_dir, input_name).is_ok_and(|n| n.same_file(&p.before)) {
            return Err(Problem::Failed(
                "the input was replaced or moved while the job ran; not replaced".into(),
            ));
        }
        Ok(out)
    }
}

/// Where a commit failed: before the rename (`{out}` is still there) or after it.
enum Step {
    Before(String),
    After(String),
}

/// Makes the output durable, in place gives it the input's owner (as root), extended
/// attributes and ACL, and then its mode, renames it over the target through the directory's
/// descriptor, checks that the target's name now holds that very file and makes the rename
/// durable. Returns whether the target is new (there was none before) and what of the
/// replaced file's metadata was not kept.
fn commit(p: &Prepared, out: &File) -> Result<(bool, Vec<String>), Step> {
    let before =
        |what: &'static str| move |e: Errno| Step::Before(format!("{what}: {}", reason(e)));
    let input = Node::of(&p.input).map_err(before("reading the input's permissions"))?;
    if p.source.is_some() {
        // A new file keeps the mode the command gave it; one that replaces a target keeps
        // the target's extended attributes and ACL.
        let not_kept = match open_in(&p.dir, &p.target_name) {
            Ok(old) => match Node::of(&old) {
                Ok(was) if was.is_file() => {
                    let made = Node::of(out).map_err(before("reading the output"))?;
                    let mut not_kept =
                        crate::os::meta::carry_xattrs(&old, out).map_err(Step::Before)?;
                    not_kept.extend(crate::os::meta::carry_flags(&old, out));
                    // No more permissions than the target it replaces had: a target made
                    // private stays private (one with an ACL has the ACL's, carried above).
                    if !crate::os::meta::has_acl(&old) {
                        let mode = made.mode & was.mode & 0o7777;
                        rustix::fs::fchmod(out, Mode::from_raw_mode(mode as rustix::fs::RawMode))
                            .map_err(before("setting the output's permissions"))?;
                    }
                    not_kept
                }
                _ => Vec::new(),
            },
            Err(_) => Vec::new(),
        };
        // Provenance last, over any carried from the target it replaces; a file system
        // without extended attributes keeps none (the target is then judged by its time).
        for (name, value) in &p.stamp {
            let _ = rustix::fs::fsetxattr(
                out,
                name.as_str(),
                value.as_bytes(),
                rustix::fs::XattrFlags::empty(),
            );
        }
        let node = Node::of(out).map_err(before("reading the output"))?;
        rustix::fs::fsync(out).map_err(before("syncing the output"))?;
        let created = matches!(Node::at(&p.dir, &p.target_name), Err(Errno::NOENT));
        rename_into_place(p, &node)?;
        return Ok((created, not_kept));
    }
    // Owner first: chown clears the set-user-id and set-group-id bits, which fchmod then sets.
    let mut not_kept = Vec::new();
    if crate::os::is_root() {
        rustix::fs::fchown(
            out,
            Some(rustix::fs::Uid::from_raw(input.uid)),
            Some(rustix::fs::Gid::from_raw(input.gid)),
        )
        .map_err(before("setting the output's owner"))?;
    } else {
        not_kept.extend(keep_group(&input, out)?);
        if input.uid != euid() {
            not_kept.push(format!(
                "owner {} (the new file belongs to the user fanout runs as)",
                input.uid
            ));
        }
    }
    // Then the attributes: setting an ACL sets the mode's group bits to its mask, which the
    // input's mode, set last, holds too.
    not_kept.extend(crate::os::meta::carry_xattrs(&p.input, out).map_err(Step::Before)?);
    not_kept.extend(crate::os::meta::carry_flags(&p.input, out));
    rustix::fs::fchmod(
        out,
        Mode::from_raw_mode((input.mode & 0o7777) as rustix::fs::RawMode),
    )
    .map_err(before("setting the output's permissions"))?;
    let node = Node::of(out).map_err(before("reading the output"))?;
    rustix::fs::fsync(out).map_err(before("syncing the output"))?;
    rename_into_place(p, &node)?;
    Ok((false, not_kept))
}

/// Not as root: gives the output the input's group, which its user may give to any group
/// it is a member of. When it cannot and the mode gives the group any permission, the new
/// file must not replace the input: that permission would go to another group (the user's
/// own, which may be a shared one). Returns what was not kept.
fn keep_group(input: &Node, out: &File) -> Result<Option<String>, Step> {
    let now =
        Node::of(out).map_err(|e| Step::Before(format!("reading the output: {}", reason(e))))?;
    if now.gid == input.gid {
        return Ok(None);
    }
    match rustix::fs::fchown(out, None, Some(rustix::fs::Gid::from_raw(input.gid))) {
        Ok(()) => Ok(None),
        Err(e) if input.mode & 0o070 != 0 => Err(Step::Before(format!(
            "the file's group {} cannot be given to the new file ({}): its group permissions would go to group {}",
            input.gid,
            reason(e),
            now.gid
        ))),
        Err(e) => Ok(Some(format!("group {} ({})", input.gid, reason(e)))),
    }
}

/// Renames `{out}` (the file `node`) onto the target, checks that the target's name holds
/// that very file, and makes the rename durable.
fn rename_into_place(p: &Prepared, node: &Node) -> Result<(), Step> {
    rustix::fs::renameat(&p.dir, &p.out_name, &p.dir, &p.target_name).map_err(|e| {
        Step::Before(format!(
            "renaming the output onto the target: {}",
            reason(e)
        ))
    })?;
    if !Node::at(&p.dir, &p.target_name).is_ok_and(|n| n.same_file(node)) {
        return Err(Step::After(
            "another file took {out}'s name during the rename (someone else can write the target's directory): the target's name now holds a file fanout did not check".into(),
        ));
    }
    rustix::fs::fsync(&p.dir)
        .map_err(|e| Step::After(format!("syncing the directory: {}", reason(e))))?;
    Ok(())
}

/// Removes `{out}`, whatever the command made of it: a file or link (never followed), or a
/// directory (tools that write partitioned output do) when only fanout's user can write the
/// input's directory. Says what it could not remove.
fn remove_out(p: &Prepared) -> Result<(), String> {
    match Node::at(&p.dir, &p.out_name) {
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(format!("{{out}} could not be removed: {}", reason(e))),
        Ok(n) if n.kind == FileType::Directory => {
            if !private_dir(&p.dir_node) {
                return Err(format!(
                    "the directory {} was left in place: other users can write {}, so it may not be the command's",
                    p.out.display(),
                    dir_of(&p.target).display()
                ));
            }
            remove_tree(&p.dir, &p.out_name, 0)
                .map_err(|e| format!("{{out}} could not be removed: {}", reason(e)))
        }
        Ok(_) => rustix::fs::unlinkat(&p.dir, &p.out_name, AtFlags::empty())
            .map_err(|e| format!("{{out}} could not be removed: {}", reason(e))),
    }
}

/// Removes directory `name` of `dir` and everything in it, by descriptors: a link inside is
/// removed, never followed.
fn remove_tree(dir: &OwnedFd, name: &OsStr, depth: u32) -> Result<(), Errno> {
    if depth > MAX_TREE_DEPTH {
        return Err(Errno::NAMETOOLONG);
    }
    let sub = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let names: Vec<OsString> = rustix::fs::Dir::read_from(&sub)?
        .flatten()
        .map(|e| OsString::from_vec(e.file_name().to_bytes().to_vec()))
        .filter(|n| n != "." && n != "..")
        .collect();
    for entry in names {
        match Node::at(&sub, &entry) {
            Ok(n) if n.kind == FileType::Directory => remove_tree(&sub, &entry, depth + 1)?,
            _ => rustix::fs::unlinkat(&sub, &entry, AtFlags::empty())?,
        }
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}
