//! The run's choices that the command line spells as words (`--order`, `--halt`), as the run
//! and the Slurm plan hold them. clap's enums stay in `cli`; these are what the rest of fanout
//! sees, and they travel in a plan by their command-line names.

use serde::{Deserialize, Serialize};

use crate::cli;

/// The order in which inputs start (`--order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Order {
    /// As discovered.
    Input,
    /// Heaviest first (by parquet decoded size or file size).
    LargestFirst,
}

/// What the first failed file stops (`--halt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Halt {
    /// Start nothing new; running jobs finish.
    Soon,
    /// Start nothing new and stop running jobs.
    Now,
}

impl From<cli::Order> for Order {
    fn from(order: cli::Order) -> Order {
        match order {
            cli::Order::Input => Order::Input,
            cli::Order::LargestFirst => Order::LargestFirst,
        }
    }
}

impl From<cli::Halt> for Halt {
    fn from(halt: cli::Halt) -> Halt {
        match halt {
            cli::Halt::Soon => Halt::Soon,
            cli::Halt::Now => Halt::Now,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    /// A plan names each choice as the command line does, and reads it back.
    fn travels_by_its_command_line_name<C, T>()
    where
        C: ValueEnum,
        T: From<C> + Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        for v in C::value_variants() {
            let name = v.to_possible_value().unwrap().get_name().to_string();
            let ours = T::from(v.clone());
            assert_eq!(serde_json::to_value(&ours).unwrap(), name);
            assert_eq!(serde_json::from_value::<T>(name.into()).unwrap(), ours);
        }
    }

    #[test]
    fn choices_travel_by_their_command_line_names() {
        travels_by_its_command_line_name::<cli::Order, Order>();
        travels_by_its_command_line_name::<cli::Halt, Halt>();
    }
}
