//! Profiles: what was found (`[machine]`, `[disk_measured]`) and the broker settings chosen from it
//! (`[broker]`), written and read as TOML. Built-in profiles (`latency`, `throughput`, `balanced`) are
//! computed from discovery alone when `spate serve --profile NAME` starts; `spate tune` writes a measured
//! profile, the balanced one adjusted by the disk's numbers.
//!
//! Every key of `[broker]` is a `spate serve` setting with the same name (it could be pasted into a
//! `--config` file) and is applied by the broker; see the crate README for how each one is applied.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::discover::{format_cpu_list, DiskInfo, Machine};
use crate::measure::DiskMeasured;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The names `--profile` accepts besides a file.
pub const BUILTIN_NAMES: [&str; 3] = ["latency", "throughput", "balanced"];

/// A profile file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// `latency`, `throughput`, `balanced` or `measured`.
    pub name: String,
    /// One line on what the profile is for.
    pub description: String,
    /// What discovery found.
    pub machine: MachineSection,
    /// What `spate tune` measured (absent from built-in profiles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_measured: Option<DiskMeasured>,
    /// The settings `spate serve` applies.
    pub broker: BrokerSettings,
    /// Why each setting has its value; written as comments, not read back.
    #[serde(skip)]
    pub rationale: BTreeMap<&'static str, String>,
}

/// The `[machine]` section: discovery's findings, for the reader (the broker does not read them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineSection {
    /// CPUs online.
    pub online_cpus: String,
    /// CPUs this process may use.
    pub allowed_cpus: String,
    /// Each NUMA node's CPU list, node 0 first.
    pub numa_node_cpus: Vec<String>,
    /// Physical memory, bytes.
    pub physical_memory_bytes: u64,
    /// Physical memory or the cgroup limit if lower, bytes.
    pub usable_memory_bytes: u64,
    /// The data directory examined.
    pub data_dir: String,
    /// `MAJOR:MINOR` of its file system.
    pub disk_dev: String,
    /// The whole disk's name, or `unknown`.
    pub disk_device: String,
    /// `queue/rotational` (absent: unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_rotational: Option<bool>,
    /// `queue/logical_block_size` (absent: unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_logical_block_size: Option<u64>,
    /// `queue/nr_requests` (absent: unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_nr_requests: Option<u64>,
    /// `queue/io_poll` (absent: unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_io_poll: Option<bool>,
}

/// The `[broker]` section. Same names and meanings as `spate serve`'s settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSettings {
    /// CPUs to run one shard each on (the shard count is their number).
    pub cores: String,
    /// Request and response memory budget of each shard.
    pub memory_budget_bytes_per_shard: u64,
    /// Batch cache of each shard.
    pub batch_cache_bytes_per_shard: u64,
    /// Entries of each shard's io_uring rings.
    pub io_ring_depth: u64,
    /// I/O memory each shard preallocates and registers with io_uring.
    pub io_memory_bytes_per_shard: u64,
    /// How long an idle shard polls before sleeping in the kernel; 0 never polls.
    pub spin_before_park_us: u64,
    /// How often a busy shard's task queue yields so I/O completions are collected.
    pub preempt_timer_ms: u64,
    /// How long a log waits for more appenders before a write + fdatasync.
    pub group_commit_window_us: u64,
    /// Direct writes in flight at once over all of a shard's logs; 0: no cap (each log has at most one).
    #[serde(default)]
    pub max_inflight_writes_per_shard: u64,
    /// Most record bytes one Fetch response carries after its first batch (Kafka's `fetch.max.bytes`).
    #[serde(default = "kafka_fetch_max_bytes")]
    pub fetch_max_bytes: u64,
    /// SO_SNDBUF of accepted connections; 0 leaves the kernel's autotuning.
    pub socket_send_buffer_bytes: u64,
    /// SO_RCVBUF of accepted connections; 0 leaves the kernel's autotuning.
    pub socket_receive_buffer_bytes: u64,
}

/// Kafka's `fetch.max.bytes` default (55 MiB).
pub const KAFKA_FETCH_MAX_BYTES: u64 = 57_671_680;

fn kafka_fetch_max_bytes() -> u64 {
    KAFKA_FETCH_MAX_BYTES
}

/// A profile that could not be found, read or parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError(pub String);

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProfileError {}

/// Which built-in profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// Lowest produce and fetch latency: shards poll before sleeping, short preemption, no commit window.
    Latency,
    /// Most bytes per second per core: no polling, deep rings, a group-commit window, bigger caches.
    Throughput,
    /// Between the two; the base of a measured profile.
    Balanced,
}

impl Builtin {
    /// By name (`latency`, `throughput`, `balanced`).
    pub fn from_name(name: &str) -> Option<Builtin> {
        match name {
            "latency" => Some(Builtin::Latency),
            "throughput" => Some(Builtin::Throughput),
            "balanced" => Some(Builtin::Balanced),
            _ => None,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Latency => "latency",
            Builtin::Throughput => "throughput",
            Builtin::Balanced => "balanced",
        }
    }
}

/// The built-in profile `kind` for this machine and disk.
pub fn builtin(kind: Builtin, machine: &Machine, disk: &DiskInfo) -> Profile {
    let mut notes = BTreeMap::new();
    let mut cpus = machine.allowed_cpus_by_node();
    if cpus.is_empty() {
        cpus.push(0);
    }
    if kind == Builtin::Latency && cpus.len() >= 8 && cpus.contains(&0) {
        cpus.retain(|&cpu| cpu != 0);
        notes.insert(
            "cores",
            "every allowed CPU but CPU 0, which keeps interrupts, the main and signal threads and \
                               other processes off the shards' cores (8 or more CPUs)"
                .to_owned(),
        );
    } else {
        notes.insert("cores", "one shard per allowed CPU, ordered NUMA node by node".to_owned());
    }
    let shards = cpus.len() as u64;
    let memory = match machine.usable_memory_bytes() {
        0 => 4 * GIB,
        bytes => bytes,
    };
    let per_shard = |share: u64| memory / share / shards;
    let (budget, cache) = match kind {
        Builtin::Latency | Builtin::Balanced => {
            notes.insert(
                "memory_budget_bytes_per_shard",
                "a quarter of usable memory over the shards, 64..=512 MiB (the broker's default)".into(),
            );
            notes.insert(
                "batch_cache_bytes_per_shard",
                "another quarter, at most 256 MiB (the broker's default): half of memory stays free for the OS".into(),
            );
            (per_shard(4).clamp(64 * MIB, 512 * MIB), per_shard(4).clamp(MIB, 256 * MIB))
        }
        Builtin::Throughput => {
            notes.insert(
                "memory_budget_bytes_per_shard",
                "a quarter of usable memory over the shards, 64 MiB..=1 GiB: more requests in flight".into(),
            );
            notes.insert(
                "batch_cache_bytes_per_shard",
                "half of usable memory over the shards: Spate reads around the page cache (O_DIRECT), so this \
                 cache is what the page cache is to Kafka; consumers that lag, or catch up on a backlog that \
                 fits, read from memory"
                    .into(),
            );
            (per_shard(4).clamp(64 * MIB, GIB), per_shard(2).max(MIB))
        }
    };
    let inflight = match kind {
        Builtin::Latency => 16,
        Builtin::Balanced | Builtin::Throughput => 0,
    };
    notes.insert(
        "max_inflight_writes_per_shard",
        match kind {
            Builtin::Latency => {
                "16: a shard with many partitions queues at most 16 direct writes on the device, so a write \
                that an fdatasync or an acknowledgement waits for is not stuck behind hundreds"
                    .into()
            }
            _ => "0: no cap beyond one write in flight per partition".into(),
        },
    );
    let fetch_max_bytes = match kind {
        Builtin::Latency => 8 * MIB,
        Builtin::Balanced | Builtin::Throughput => KAFKA_FETCH_MAX_BYTES,
    };
    notes.insert(
        "fetch_max_bytes",
        match kind {
            Builtin::Latency => "8 MiB: a fetch holds less of the shard's memory budget and its socket for less time \
                (not measured to matter yet)"
                .into(),
            _ => "55 MiB (Kafka's fetch.max.bytes); a fetch also reserves at most a 64th of the memory budget".into(),
        },
    );
    let (ring, io_memory, spin, preempt, window) = match kind {
        Builtin::Latency => (128, 16 * MIB, 200, 5, 0),
        Builtin::Balanced => (128, 16 * MIB, 50, 25, 0),
        Builtin::Throughput => (256, 64 * MIB, 0, 100, 100),
    };
    notes.insert(
        "io_ring_depth",
        match kind {
            Builtin::Throughput => "256: more direct writes and reads in flight per shard".into(),
            _ => "128 (glommio's default): deep enough for an NVMe queue at a shard's share".into(),
        },
    );
    notes.insert("io_memory_bytes_per_shard", format!("{} MiB registered for DMA: each partition's write buffer is 1 MiB, so a shard with more active partitions falls back to unregistered memory", io_memory / MIB));
    notes.insert("spin_before_park_us", match kind {
        Builtin::Latency => "200: an idle shard polls 200 µs before sleeping, so a request arriving soon after is seen without a wakeup".into(),
        Builtin::Balanced => "50 (the broker's default)".into(),
        Builtin::Throughput => "0: no polling; busy shards never park anyway, idle ones give the CPU back".into(),
    });
    notes.insert(
        "preempt_timer_ms",
        match kind {
            Builtin::Latency => {
                "5: a busy shard collects I/O completions and new connections' data at least every 5 ms".into()
            }
            Builtin::Balanced => "25".into(),
            Builtin::Throughput => "100 (glommio's default): fewest interruptions of long batches of work".into(),
        },
    );
    notes.insert("group_commit_window_us", match kind {
        Builtin::Throughput => "100: a flushing log waits this long for more appenders, so one fdatasync covers more produce requests. \
            Measured here: 4 producers flushing one partition, +19% at 100 us, -30% at 500 us, -78% at 2 ms (a window longer than \
            the gaps between appenders only adds waiting); `spate tune` fits it to the measured fdatasync latency instead. The \
            rotational flag is no guide: this VM's virtio disk claims to be rotational".into(),
        _ => "0: no waiting; only appenders already woken share a write and fdatasync".into(),
    });
    let (send, receive) = match kind {
        Builtin::Throughput => (
            socket_buffer(machine.wmem_max_bytes, machine.tcp_wmem_autotune_max_bytes, 8 * MIB),
            socket_buffer(machine.rmem_max_bytes, machine.tcp_rmem_autotune_max_bytes, 8 * MIB),
        ),
        _ => (0, 0),
    };
    notes.insert("socket_send_buffer_bytes", match (kind, send) {
        (Builtin::Throughput, 0) => "0: net.core.wmem_max does not allow more than the kernel's autotuning reaches, so it is left to autotuning".into(),
        (Builtin::Throughput, _) => "8 MiB: large produce and fetch responses without waiting for autotuning to grow the window".into(),
        _ => "0: the kernel's autotuning".into(),
    });
    notes.insert("socket_receive_buffer_bytes", match (kind, receive) {
        (Builtin::Throughput, 0) => "0: net.core.rmem_max does not allow more than the kernel's autotuning reaches, so it is left to autotuning".into(),
        (Builtin::Throughput, _) => "8 MiB: large produce requests arrive without waiting for autotuning".into(),
        _ => "0: the kernel's autotuning".into(),
    });
    let description = match kind {
        Builtin::Latency => "lowest latency: idle shards poll, short preemption, no group-commit window",
        Builtin::Throughput => {
            "most throughput: no polling, deep rings, group-commit window, large caches and socket buffers"
        }
        Builtin::Balanced => "between latency and throughput; the broker's defaults with a shorter preemption timer",
    };
    Profile {
        name: kind.name().to_owned(),
        description: description.to_owned(),
        machine: MachineSection::new(machine, disk),
        disk_measured: None,
        broker: BrokerSettings {
            cores: format_cpu_list(&cpus),
            memory_budget_bytes_per_shard: budget,
            batch_cache_bytes_per_shard: cache,
            io_ring_depth: ring,
            io_memory_bytes_per_shard: io_memory,
            spin_before_park_us: spin,
            preempt_timer_ms: preempt,
            group_commit_window_us: window,
            max_inflight_writes_per_shard: inflight,
            fetch_max_bytes,
            socket_send_buffer_bytes: send,
            socket_receive_buffer_bytes: receive,
        },
        rationale: notes,
    }
}

/// A socket buffer size worth setting: `wanted`, if the kernel lets a process set more than its autotuning
/// would reach (`*_max` above `tcp_*mem[2]`); otherwise 0, leaving autotuning on (setting a size turns it off,
/// and a size capped at a small `*_max` would only shrink the window).
pub fn socket_buffer(core_max: Option<u64>, autotune_max: Option<u64>, wanted: u64) -> u64 {
    match (core_max, autotune_max) {
        (Some(core_max), Some(autotune_max)) if core_max > autotune_max => wanted.min(core_max),
        _ => 0,
    }
}

/// The profile `spate tune` writes: balanced, with the disk's numbers deciding the ring depth, the
/// group-commit window and the polling.
pub fn measured(machine: &Machine, disk: &DiskInfo, measured: DiskMeasured) -> Profile {
    let mut profile = builtin(Builtin::Balanced, machine, disk);
    profile.name = "measured".to_owned();
    profile.description = "balanced, adjusted to the measured disk by spate tune".to_owned();
    let saturation = u64::from(measured.write_saturation_qd.max(measured.read_saturation_qd).max(1));
    profile.broker.io_ring_depth = (saturation * 4).next_power_of_two().clamp(64, 1024);
    profile.rationale.insert(
        "io_ring_depth",
        format!(
            "4 x the queue depth where 1 MiB transfers reach 90% of their best bandwidth (QD {saturation}), \
         64..=1024: room for that much storage I/O plus the network's requests on the same ring"
        ),
    );
    profile.broker.max_inflight_writes_per_shard = (saturation * 2).clamp(4, 256);
    profile.rationale.insert(
        "max_inflight_writes_per_shard",
        format!(
            "2 x the queue depth where writes saturate (QD {saturation}), 4..=256: enough to keep the device busy, \
             no deeper device queue than that"
        ),
    );
    profile.broker.group_commit_window_us = group_commit_window_us(measured.fdatasync_p50_us);
    profile.rationale.insert(
        "group_commit_window_us",
        format!(
            "a quarter of the median write + fdatasync ({:.0} µs), at most 2 ms; 0 under 100 µs, where an fdatasync \
         costs less than waiting",
            measured.fdatasync_p50_us
        ),
    );
    if measured.fdatasync_p50_us >= 1000.0 {
        profile.broker.spin_before_park_us = 0;
        profile.rationale.insert(
            "spin_before_park_us",
            "0: a flush costs a millisecond or more, so the wakeup \
                                  polling saves is noise; idle shards give the CPU back"
                .into(),
        );
    }
    profile.disk_measured = Some(measured);
    profile
}

/// The group-commit window for a disk whose write + fdatasync takes `fdatasync_p50_us` (median).
pub fn group_commit_window_us(fdatasync_p50_us: f64) -> u64 {
    if !fdatasync_p50_us.is_finite() || fdatasync_p50_us < 100.0 {
        return 0;
    }
    ((fdatasync_p50_us / 4.0).round() as u64).min(2000)
}

impl MachineSection {
    /// From discovery.
    pub fn new(machine: &Machine, disk: &DiskInfo) -> MachineSection {
        MachineSection {
            online_cpus: format_cpu_list(&machine.online_cpus),
            allowed_cpus: format_cpu_list(&machine.allowed_cpus),
            numa_node_cpus: machine.numa_nodes.iter().map(|node| format_cpu_list(&node.cpus)).collect(),
            physical_memory_bytes: machine.physical_memory_bytes,
            usable_memory_bytes: machine.usable_memory_bytes(),
            data_dir: disk.path.display().to_string(),
            disk_dev: disk.dev.clone(),
            disk_device: disk.device.clone(),
            disk_rotational: disk.rotational,
            disk_logical_block_size: disk.logical_block_size,
            disk_nr_requests: disk.nr_requests,
            disk_io_poll: disk.io_poll,
        }
    }
}

impl Profile {
    /// The TOML text, with the rationale of each setting as comments at the top.
    pub fn to_toml(&self) -> String {
        let mut text = format!("# Spate tuning profile `{}`: {}\n", self.name, self.description);
        text.push_str("# Apply with `spate serve --profile FILE`; --config settings and flags override [broker].\n");
        for (key, why) in &self.rationale {
            text.push_str(&format!("# {key}: {why}\n"));
        }
        text.push('\n');
        text.push_str(&toml::to_string(self).expect("a profile always serializes"));
        text
    }

    /// Parses a profile's TOML text.
    pub fn from_toml(text: &str) -> Result<Profile, ProfileError> {
        toml::from_str(text).map_err(|error| ProfileError(error.to_string()))
    }

    /// A built-in profile by name, computed for this machine and `data_dir`'s disk, or else a profile file.
    pub fn load(name_or_path: &str, data_dir: &Path) -> Result<Profile, ProfileError> {
        if let Some(kind) = Builtin::from_name(name_or_path) {
            return Ok(builtin(kind, &crate::discover::machine(), &crate::discover::disk(data_dir)));
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            return Err(ProfileError(format!(
                "profile {name_or_path:?} is neither a built-in profile ({}) nor an existing file",
                BUILTIN_NAMES.join(", ")
            )));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|error| ProfileError(format!("cannot read profile file {}: {error}", path.display())))?;
        Profile::from_toml(&text).map_err(|error| ProfileError(format!("profile file {}: {error}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::NumaNode;

    fn machine(cpus: usize, memory: u64) -> Machine {
        Machine {
            online_cpus: (0..cpus).collect(),
            allowed_cpus: (0..cpus).collect(),
            numa_nodes: vec![NumaNode { id: 0, cpus: (0..cpus).collect() }],
            physical_memory_bytes: memory,
            cgroup_memory_limit_bytes: None,
            rmem_max_bytes: Some(212_992),
            wmem_max_bytes: Some(212_992),
            tcp_rmem_autotune_max_bytes: Some(6 << 20),
            tcp_wmem_autotune_max_bytes: Some(4 << 20),
        }
    }

    fn disk(rotational: Option<bool>) -> DiskInfo {
        DiskInfo {
            path: "/data".into(),
            dev: "259:2".into(),
            device: "nvme0n1".into(),
            rotational,
            logical_block_size: Some(512),
            nr_requests: Some(1023),
            io_poll: Some(false),
            free_bytes: Some(100 << 30),
        }
    }

    fn sample_measured(fdatasync_p50_us: f64) -> DiskMeasured {
        DiskMeasured {
            mode: "quick".into(),
            direct_io: true,
            test_file_bytes: 32 << 20,
            duration_s: 1.5,
            seq_write_1m_mib_s: 900.0,
            seq_read_1m_mib_s: 2000.0,
            rand_read_4k_iops: 150_000.0,
            write_saturation_qd: 4,
            read_saturation_qd: 16,
            fdatasync_per_s: 1e6 / fdatasync_p50_us,
            fdatasync_p50_us,
            fdatasync_p99_us: fdatasync_p50_us * 3.0,
            points: [("seq_write_1m_qd4_mib_s".to_owned(), 900.0)].into_iter().collect(),
        }
    }

    #[test]
    fn builtins_differ_where_they_should() {
        let (big, nvme) = (machine(16, 64 << 30), disk(Some(false)));
        let latency = builtin(Builtin::Latency, &big, &nvme).broker;
        let throughput = builtin(Builtin::Throughput, &big, &nvme).broker;
        let balanced = builtin(Builtin::Balanced, &big, &nvme).broker;
        assert_eq!(latency.cores, "1-15", "CPU 0 is left to the OS on 8+ CPUs");
        assert_eq!((throughput.cores.as_str(), balanced.cores.as_str()), ("0-15", "0-15"));
        assert!(latency.spin_before_park_us > balanced.spin_before_park_us);
        assert_eq!(throughput.spin_before_park_us, 0);
        assert_eq!(latency.group_commit_window_us, 0);
        assert!(throughput.group_commit_window_us > 0);
        assert!(throughput.batch_cache_bytes_per_shard > balanced.batch_cache_bytes_per_shard);
        assert!(latency.preempt_timer_ms < throughput.preempt_timer_ms);
        assert_eq!(balanced.memory_budget_bytes_per_shard, 512 << 20, "64 GiB / 4 / 16 = 1 GiB, capped at 512 MiB");
        assert_eq!(throughput.socket_receive_buffer_bytes, 0, "rmem_max below autotuning: left to the kernel");
        assert_eq!(builtin(Builtin::Latency, &machine(2, 8 << 30), &nvme).broker.cores, "0-1");
    }

    #[test]
    fn memory_is_shared_by_the_shards_within_bounds() {
        let small = builtin(Builtin::Balanced, &machine(2, 1 << 30), &disk(None)).broker;
        assert_eq!(small.memory_budget_bytes_per_shard, 128 << 20);
        assert_eq!(small.batch_cache_bytes_per_shard, 128 << 20);
        let tiny = builtin(Builtin::Throughput, &machine(64, 1 << 30), &disk(None)).broker;
        assert_eq!(tiny.memory_budget_bytes_per_shard, 64 << 20, "never under the 64 MiB floor");
    }

    #[test]
    fn socket_buffers_only_when_the_kernel_allows_more_than_autotuning() {
        assert_eq!(socket_buffer(Some(212_992), Some(6 << 20), 8 << 20), 0);
        assert_eq!(socket_buffer(Some(16 << 20), Some(6 << 20), 8 << 20), 8 << 20);
        assert_eq!(socket_buffer(Some(7 << 20), Some(6 << 20), 8 << 20), 7 << 20);
        assert_eq!(socket_buffer(None, Some(6 << 20), 8 << 20), 0);
    }

    #[test]
    fn measured_values_come_from_the_measurements() {
        assert_eq!(group_commit_window_us(30.0), 0, "fast flushes need no window");
        assert_eq!(group_commit_window_us(2000.0), 500);
        assert_eq!(group_commit_window_us(20_000.0), 2000, "capped");
        assert_eq!(group_commit_window_us(f64::NAN), 0);
        let profile = measured(&machine(4, 16 << 30), &disk(Some(false)), sample_measured(2000.0));
        assert_eq!(profile.broker.io_ring_depth, 64, "QD 16 saturates: 64 entries");
        assert_eq!(profile.broker.group_commit_window_us, 500);
        assert_eq!(profile.broker.spin_before_park_us, 0);
        let fast = measured(&machine(4, 16 << 30), &disk(Some(false)), sample_measured(50.0));
        assert_eq!((fast.broker.group_commit_window_us, fast.broker.spin_before_park_us), (0, 50));
    }

    #[test]
    fn toml_round_trip_with_stable_baseline_keys() {
        let profile = measured(&machine(4, 16 << 30), &disk(None), sample_measured(2000.0));
        let text = profile.to_toml();
        assert!(text.starts_with("# Spate tuning profile `measured`"), "{text}");
        let value: toml::Value = toml::from_str(&text).unwrap();
        let measured = &value["disk_measured"];
        for key in ["seq_write_1m_mib_s", "fdatasync_per_s", "fdatasync_p50_us", "fdatasync_p99_us"] {
            assert!(measured[key].as_float().unwrap() > 0.0, "{key}");
        }
        assert_eq!(measured["points"]["seq_write_1m_qd4_mib_s"].as_float(), Some(900.0));
        assert!(value["machine"].get("disk_rotational").is_none(), "unknown is left out");
        let back = Profile::from_toml(&text).unwrap();
        assert_eq!(back.broker, profile.broker);
        assert_eq!(back.disk_measured, profile.disk_measured);
        let builtin_text = builtin(Builtin::Latency, &machine(2, 8 << 30), &disk(Some(true))).to_toml();
        assert!(Profile::from_toml(&builtin_text).unwrap().disk_measured.is_none());
    }

    #[test]
    fn bad_profiles_are_refused_clearly() {
        let error = Profile::load("fastest", Path::new("/tmp")).unwrap_err();
        assert!(error.0.contains("neither a built-in profile (latency, throughput, balanced)"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "name = \"x\"\n").unwrap();
        let error = Profile::load(path.to_str().unwrap(), dir.path()).unwrap_err();
        assert!(error.0.contains("bad.toml"), "{error}");
        let good = builtin(Builtin::Throughput, &machine(2, 8 << 30), &disk(None));
        let mut text = good.to_toml();
        text = text.replace("[broker]\n", "[broker]\nno_such_setting = 1\n");
        assert!(Profile::from_toml(&text).unwrap_err().0.contains("no_such_setting"));
        assert_eq!(Profile::load("balanced", dir.path()).unwrap().name, "balanced");
    }
}
