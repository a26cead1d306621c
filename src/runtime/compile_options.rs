//! Compile options and their encoding as `xla.CompileOptionsProto`.

use std::collections::BTreeMap;

use prost::Message;

use super::error::{Result, RuntimeError};
use super::options_proto::{
    CompileOptionsProto, ComputationDevice, DeviceAssignmentProto, ExecutableBuildOptionsProto,
    OptionOverrideProto, OptionOverrideValue,
};

/// Which device runs each (replica, partition) pair of a computation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeviceAssignment {
    /// `devices[replica][partition]` = device id.
    devices: Vec<Vec<i64>>,
}

impl DeviceAssignment {
    /// From `devices[replica][partition]`; the table must be rectangular and non-empty and no
    /// device may appear twice.
    pub fn new(devices: Vec<Vec<i64>>) -> Result<DeviceAssignment> {
        let partitions = devices.first().map_or(0, Vec::len);
        if partitions == 0 || devices.iter().any(|row| row.len() != partitions) {
            return Err(RuntimeError::invalid(format!(
                "device assignment {devices:?} must be a non-empty [replica][partition] table with equal rows"
            )));
        }
        let mut seen: Vec<i64> = devices.iter().flatten().copied().collect();
        seen.sort_unstable();
        if let Some(pair) = seen.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(RuntimeError::invalid(format!(
                "device assignment {devices:?} uses device {} more than once",
                pair[0]
            )));
        }
        Ok(DeviceAssignment { devices })
    }

    /// One partition, replica `r` on device `device_ids[r]`.
    pub fn replicas(device_ids: &[i64]) -> Result<DeviceAssignment> {
        DeviceAssignment::new(device_ids.iter().map(|&id| vec![id]).collect())
    }

    pub fn num_replicas(&self) -> usize {
        self.devices.len()
    }

    pub fn num_partitions(&self) -> usize {
        self.devices[0].len()
    }

    /// The device of (replica, partition).
    pub fn device(&self, replica: usize, partition: usize) -> Option<i64> {
        self.devices.get(replica)?.get(partition).copied()
    }

    fn to_proto(&self) -> DeviceAssignmentProto {
        // The proto is partition-major: one `ComputationDevice` per partition listing replicas.
        let computation_devices = (0..self.num_partitions())
            .map(|p| ComputationDevice {
                replica_device_ids: self.devices.iter().map(|row| row[p]).collect(),
            })
            .collect();
        DeviceAssignmentProto {
            replica_count: self.num_replicas() as i32,
            computation_count: self.num_partitions() as i32,
            computation_devices,
        }
    }
}

/// The value of one XLA debug option overridden for a single compile.
#[derive(Clone, Debug, PartialEq)]
pub enum OptionOverride {
    String(String),
    Bool(bool),
    Int(i64),
    Double(f64),
}

/// What `Client::compile` passes to XLA besides the program.
///
/// `num_replicas` and `num_partitions` must be at least 1: XLA copies them verbatim and the CPU
/// plugins abort the whole process on 0, so encoding rejects 0 before anything reaches the plugin.
#[derive(Clone, Debug, PartialEq)]
pub struct CompileOptions {
    pub num_replicas: u32,
    pub num_partitions: u32,
    /// Explicit placement; `None` lets the plugin choose its default assignment.
    pub device_assignment: Option<DeviceAssignment>,
    /// XLA debug options for this compile only (e.g. `xla_dump_to`), by flag name.
    pub env_option_overrides: BTreeMap<String, OptionOverride>,
}

impl Default for CompileOptions {
    /// One replica, one partition, default placement, no overrides.
    fn default() -> CompileOptions {
        CompileOptions {
            num_replicas: 1,
            num_partitions: 1,
            device_assignment: None,
            env_option_overrides: BTreeMap::new(),
        }
    }
}

impl CompileOptions {
    /// `replicas` replicas of one partition (the data-parallel route), default placement.
    pub fn replicated(replicas: u32) -> CompileOptions {
        CompileOptions {
            num_replicas: replicas,
            ..CompileOptions::default()
        }
    }

    /// Adds (or replaces) one XLA debug option override.
    pub fn with_override(
        mut self,
        name: impl Into<String>,
        value: OptionOverride,
    ) -> CompileOptions {
        self.env_option_overrides.insert(name.into(), value);
        self
    }

    /// Checks the options and builds the proto.
    pub fn to_proto(&self) -> Result<CompileOptionsProto> {
        if self.num_replicas == 0 || self.num_partitions == 0 {
            return Err(RuntimeError::invalid(format!(
                "compile options need at least 1 replica and 1 partition, got {} replicas and {} partitions",
                self.num_replicas, self.num_partitions
            )));
        }
        if let Some(assignment) = &self.device_assignment {
            let (replicas, partitions) = (assignment.num_replicas(), assignment.num_partitions());
            if (replicas, partitions) != (self.num_replicas as usize, self.num_partitions as usize)
            {
                return Err(RuntimeError::invalid(format!(
                    "device assignment is {replicas} replicas x {partitions} partitions but the options ask for \
                     {} x {}",
                    self.num_replicas, self.num_partitions
                )));
            }
        }
        let build_options = ExecutableBuildOptionsProto {
            device_ordinal: -1,
            num_replicas: i64::from(self.num_replicas),
            num_partitions: i64::from(self.num_partitions),
            device_assignment: self
                .device_assignment
                .as_ref()
                .map(DeviceAssignment::to_proto),
            ..Default::default()
        };
        let env_option_overrides = self
            .env_option_overrides
            .iter()
            .map(|(name, value)| {
                let value = match value {
                    OptionOverride::String(s) => OptionOverrideValue::StringField(s.clone()),
                    OptionOverride::Bool(b) => OptionOverrideValue::BoolField(*b),
                    OptionOverride::Int(i) => OptionOverrideValue::IntField(*i),
                    OptionOverride::Double(d) => OptionOverrideValue::DoubleField(*d),
                };
                (name.clone(), OptionOverrideProto { value: Some(value) })
            })
            .collect();
        Ok(CompileOptionsProto {
            executable_build_options: Some(build_options),
            env_option_overrides,
            ..Default::default()
        })
    }

    /// The serialized `xla.CompileOptionsProto`. Deterministic (overrides are sorted by name), so
    /// equal options give equal bytes, as an executable cache key needs.
    pub fn encode(&self) -> Result<Vec<u8>> {
        Ok(self.to_proto()?.encode_to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_replicas_or_partitions_never_encode() {
        let err = CompileOptions::replicated(0).encode().unwrap_err();
        assert!(err.to_string().contains("at least 1 replica"), "{err}");
        let options = CompileOptions {
            num_partitions: 0,
            ..CompileOptions::default()
        };
        assert!(options.encode().is_err());
    }

    #[test]
    fn default_options_carry_the_safe_minimum() {
        let proto = CompileOptions::default().to_proto().unwrap();
        let build = proto.executable_build_options.unwrap();
        assert_eq!(
            (
                build.device_ordinal,
                build.num_replicas,
                build.num_partitions
            ),
            (-1, 1, 1)
        );
        assert!(build.device_assignment.is_none());
        // Field 3 (executable_build_options) holds field 1 = -1 (ten-byte varint), 4 = 1, 5 = 1.
        let mut expected = vec![0x1a, 15, 0x08];
        expected.extend([0xff; 9]);
        expected.push(0x01);
        expected.extend([0x20, 0x01, 0x28, 0x01]);
        assert_eq!(CompileOptions::default().encode().unwrap(), expected);
    }

    #[test]
    fn device_assignment_is_partition_major_in_the_proto() {
        let assignment = DeviceAssignment::new(vec![vec![0, 1], vec![2, 3], vec![4, 5]]).unwrap();
        let options = CompileOptions {
            num_replicas: 3,
            num_partitions: 2,
            device_assignment: Some(assignment),
            ..CompileOptions::default()
        };
        let proto = options
            .to_proto()
            .unwrap()
            .executable_build_options
            .unwrap()
            .device_assignment
            .unwrap();
        assert_eq!((proto.replica_count, proto.computation_count), (3, 2));
        let per_partition: Vec<Vec<i64>> = proto
            .computation_devices
            .into_iter()
            .map(|c| c.replica_device_ids)
            .collect();
        assert_eq!(per_partition, vec![vec![0, 2, 4], vec![1, 3, 5]]);
    }

    #[test]
    fn device_assignment_must_match_the_counts_and_be_a_table() {
        let options = CompileOptions {
            num_replicas: 2,
            device_assignment: Some(DeviceAssignment::replicas(&[0, 1, 2]).unwrap()),
            ..CompileOptions::default()
        };
        assert!(options
            .encode()
            .unwrap_err()
            .to_string()
            .contains("3 replicas x 1 partitions"));
        assert!(DeviceAssignment::new(vec![vec![0, 1], vec![2]]).is_err());
        assert!(DeviceAssignment::new(vec![]).is_err());
        assert!(DeviceAssignment::replicas(&[1, 1])
            .unwrap_err()
            .to_string()
            .contains("device 1 more than once"));
    }

    #[test]
    fn overrides_encode_in_name_order() {
        let a = CompileOptions::default()
            .with_override("xla_dump_to", OptionOverride::String("/tmp/x".into()))
            .with_override("xla_dump_hlo_as_text", OptionOverride::Bool(true));
        let b = CompileOptions::default()
            .with_override("xla_dump_hlo_as_text", OptionOverride::Bool(true))
            .with_override("xla_dump_to", OptionOverride::String("/tmp/x".into()));
        assert_eq!(a.encode().unwrap(), b.encode().unwrap());
        let proto = a.to_proto().unwrap();
        let names: Vec<&String> = proto.env_option_overrides.keys().collect();
        assert_eq!(names, ["xla_dump_hlo_as_text", "xla_dump_to"]);
        assert_eq!(
            proto.env_option_overrides["xla_dump_to"].value,
            Some(OptionOverrideValue::StringField("/tmp/x".into()))
        );
    }
}
