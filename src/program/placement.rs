//! Where the replicas of a data-parallel run live and which of them this process drives.
//!
//! On one host every replica is local. On a multi-host TPU pod slice every host runs the same
//! command and the plugin's client sees all devices of the slice: the program is compiled for
//! all of them (the plugin's default placement), and each host feeds, steps and reads only the
//! replicas on its own devices. Replica `r` trains on the `r`-th of equal shares of the global
//! batch, so each host reads just the consecutive shares of its replicas.

use std::ops::Range;

use anyhow::{bail, Result};

use crate::data::{FileShare, Shard};

/// The replicas of a run and this process's part of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    replicas: usize,
    process: usize,
    /// The replicas on this process's devices: consecutive replica numbers.
    local: Range<usize>,
    /// The device id of each local replica, in replica order.
    local_device_ids: Vec<i64>,
}

impl Placement {
    /// From the device id of every replica (`assignment[r]`, the plugin's default placement),
    /// the process owning each device id (`owner`), and this process's index among
    /// `processes`. Every process must hold the same number of replicas, consecutively
    /// numbered, so that hosts read equal consecutive shares of each batch.
    pub fn new(
        assignment: &[i64],
        owner: impl Fn(i64) -> Option<usize>,
        process: usize,
        processes: usize,
    ) -> Result<Placement> {
        if assignment.is_empty() || processes == 0 || process >= processes {
            bail!(
                "no placement of {} replicas for process {process} of {processes}",
                assignment.len()
            );
        }
        let owners = assignment
            .iter()
            .map(|&id| {
                owner(id).ok_or_else(|| anyhow::anyhow!("device {id} of the placement is unknown"))
            })
            .collect::<Result<Vec<usize>>>()?;
        let mine: Vec<usize> = (0..owners.len())
            .filter(|&r| owners[r] == process)
            .collect();
        let per_process = assignment.len() / processes;
        let (Some(&first), Some(&last)) = (mine.first(), mine.last()) else {
            bail!(
                "process {process} owns none of the {} replicas' devices",
                assignment.len()
            );
        };
        if last + 1 - first != mine.len() {
            bail!(
                "the devices of process {process} hold replicas {mine:?}, not consecutive ones: \
                 each host must read one consecutive part of the batch"
            );
        }
        if mine.len() != per_process || !assignment.len().is_multiple_of(processes) {
            bail!(
                "process {process} holds {} of {} replicas over {processes} processes: every host \
                 needs the same number of devices",
                mine.len(),
                assignment.len()
            );
        }
        Ok(Placement {
            replicas: assignment.len(),
            process,
            local: first..last + 1,
            local_device_ids: assignment[first..=last].to_vec(),
        })
    }

    /// Replicas over all processes (the global data-parallel width).
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// The replicas this process runs, in replica order.
    pub fn local_replicas(&self) -> Range<usize> {
        self.local.clone()
    }

    /// The device ids of [`Placement::local_replicas`].
    pub fn local_device_ids(&self) -> &[i64] {
        &self.local_device_ids
    }

    /// Whether this process writes the run's files (checkpoints, metrics, summary): process 0.
    pub fn is_primary(&self) -> bool {
        self.process == 0
    }

    /// This process's files when the hosts split a data set by file: one share per process
    /// (every process holds as many replicas as the others).
    pub fn file_share(&self) -> FileShare {
        FileShare {
            host: self.process,
            hosts: self.replicas / self.local.len(),
        }
    }

    /// The part of every global batch this process reads: its replicas' shares.
    pub fn shard(&self) -> Shard {
        Shard {
            groups: self.replicas,
            first: self.local.start,
            len: self.local.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two hosts of four devices each; the plugin places replicas host by host.
    fn two_hosts(process: usize) -> Result<Placement> {
        let assignment = [0, 1, 2, 3, 4, 5, 6, 7];
        Placement::new(&assignment, |id| Some((id / 4) as usize), process, 2)
    }

    #[test]
    fn each_host_runs_its_consecutive_replicas() {
        let second = two_hosts(1).unwrap();
        assert_eq!(second.replicas(), 8);
        assert_eq!(second.local_replicas(), 4..8);
        assert_eq!(second.local_device_ids(), &[4, 5, 6, 7]);
        assert!(!second.is_primary());
        assert_eq!(second.file_share(), FileShare { host: 1, hosts: 2 });
        assert_eq!(
            second.shard(),
            Shard {
                groups: 8,
                first: 4,
                len: 4
            }
        );
        assert!(two_hosts(0).unwrap().is_primary());
    }

    #[test]
    fn the_placement_order_decides_the_replica_numbers() {
        // A placement that lists the second host's devices first.
        let assignment = [4, 5, 0, 1];
        let first = Placement::new(&assignment, |id| Some((id / 4) as usize), 0, 2).unwrap();
        assert_eq!(first.local_replicas(), 2..4);
        assert_eq!(first.local_device_ids(), &[0, 1]);
    }

    #[test]
    fn interleaved_or_uneven_hosts_are_refused() {
        let interleaved = Placement::new(&[0, 4, 1, 5], |id| Some((id / 4) as usize), 0, 2);
        let message = interleaved.unwrap_err().to_string();
        assert!(message.contains("not consecutive"), "{message}");
        let uneven = Placement::new(&[0, 1, 2, 4], |id| Some((id / 4) as usize), 1, 2);
        let message = uneven.unwrap_err().to_string();
        assert!(message.contains("same number of devices"), "{message}");
        let unknown = Placement::new(&[0, 9], |id| (id < 4).then_some(0), 0, 1);
        assert!(unknown.unwrap_err().to_string().contains("device 9"));
    }

    #[test]
    fn one_process_holds_everything() {
        let all = Placement::new(&[0, 1, 2], |_| Some(0), 0, 1).unwrap();
        assert_eq!(all.local_replicas(), 0..3);
        assert!(all.is_primary());
    }
}
