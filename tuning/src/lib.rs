//! Spate's tuner: what the machine is ([`discover`]), what its data disk can do ([`measure`]), and the
//! per-core profile chosen from both ([`profile`]), which `spate serve --profile FILE|NAME` applies.
//! `spate tune --data-dir DIR --out FILE [--quick]` runs discovery and measurement and writes a profile.
//!
//! # Stable keys of the measured baselines
//!
//! A profile written by `spate tune` has a `[disk_measured]` table; these keys are stable (benchmark scripts
//! read them as raw baselines of the disk):
//!
//! | key | meaning |
//! | --- | --- |
//! | `disk_measured.seq_write_1m_mib_s` | sequential O_DIRECT write bandwidth with 1 MiB blocks, MiB/s (best of QD 1, 4, 16) |
//! | `disk_measured.fdatasync_per_s` | 4 KiB write + fdatasync round trips per second, one at a time |
//! | `disk_measured.fdatasync_p50_us` | median latency of a 4 KiB write + fdatasync, µs |
//! | `disk_measured.fdatasync_p99_us` | 99th percentile of the same, µs |
//! | `disk_measured.seq_read_1m_mib_s` | sequential read bandwidth with 1 MiB blocks, MiB/s (best) |
//! | `disk_measured.rand_read_4k_iops` | 4 KiB random read IOPS (best of QD 1, 8, 32) |
//! | `disk_measured.write_saturation_qd`, `read_saturation_qd` | smallest QD reaching 90% of the best 1 MiB bandwidth |
//! | `disk_measured.direct_io` | `false` if the file system refused O_DIRECT (the numbers are then the page cache's) |
//! | `disk_measured.points.<name>` | every point: `seq_write_{128k,1m}_qd{1,4,16}_mib_s`, `seq_read_…`, `rand_read_4k_qd{1,8,32}_iops` |
//!
//! All are TOML floats except the QDs (integers), `direct_io` (boolean) and `mode` (`"quick"` or `"full"`).

pub mod discover;
pub mod measure;
pub mod profile;

pub use discover::{DiskInfo, Machine};
pub use measure::{DiskMeasured, Plan};
pub use profile::{BrokerSettings, Builtin, Profile, ProfileError};

/// Discovers the machine and `data_dir`'s disk (creating `data_dir` if needed), measures the disk with `plan`,
/// and returns the measured profile.
pub fn tune(data_dir: &std::path::Path, plan: Plan) -> std::io::Result<Profile> {
    std::fs::create_dir_all(data_dir)?;
    let machine = discover::machine();
    let disk = discover::disk(data_dir);
    let measured = measure::measure(data_dir, plan)?;
    Ok(profile::measured(&machine, &disk, measured))
}

/// A few lines for a person: what was found, measured and chosen.
pub fn summary(profile: &Profile) -> String {
    let machine = &profile.machine;
    let unknown = |value: Option<String>| value.unwrap_or_else(|| discover::UNKNOWN.to_owned());
    let mut text = format!(
        "machine: CPUs {} allowed of {} online, {} NUMA node(s), {} MiB usable memory\n\
         disk: {} ({}) under {}: rotational {}, logical block {}, nr_requests {}\n",
        machine.allowed_cpus,
        machine.online_cpus,
        machine.numa_node_cpus.len(),
        machine.usable_memory_bytes >> 20,
        machine.disk_device,
        machine.disk_dev,
        machine.data_dir,
        unknown(machine.disk_rotational.map(|value| value.to_string())),
        unknown(machine.disk_logical_block_size.map(|value| value.to_string())),
        unknown(machine.disk_nr_requests.map(|value| value.to_string())),
    );
    if let Some(measured) = &profile.disk_measured {
        text.push_str(&format!(
            "measured ({}, {} MiB file, {:.1} s{}): seq write 1 MiB {:.0} MiB/s (saturates at QD {}), \
             seq read 1 MiB {:.0} MiB/s (QD {}), 4 KiB random read {:.0} IOPS\n\
             fdatasync: {:.0}/s, p50 {:.0} µs, p99 {:.0} µs\n",
            measured.mode,
            measured.test_file_bytes >> 20,
            measured.duration_s,
            if measured.direct_io { "" } else { ", buffered: O_DIRECT refused" },
            measured.seq_write_1m_mib_s,
            measured.write_saturation_qd,
            measured.seq_read_1m_mib_s,
            measured.read_saturation_qd,
            measured.rand_read_4k_iops,
            measured.fdatasync_per_s,
            measured.fdatasync_p50_us,
            measured.fdatasync_p99_us,
        ));
    }
    let broker = &profile.broker;
    text.push_str(&format!(
        "profile {}: cores {}, memory budget {} MiB and batch cache {} MiB per shard, io_uring depth {}, \
         io memory {} MiB, spin {} µs, preempt {} ms, group-commit window {} µs, socket buffers send {} / receive {} (0: kernel autotuning)\n",
        profile.name,
        broker.cores,
        broker.memory_budget_bytes_per_shard >> 20,
        broker.batch_cache_bytes_per_shard >> 20,
        broker.io_ring_depth,
        broker.io_memory_bytes_per_shard >> 20,
        broker.spin_before_park_us,
        broker.preempt_timer_ms,
        broker.group_commit_window_us,
        broker.socket_send_buffer_bytes,
        broker.socket_receive_buffer_bytes,
    ));
    text
}
