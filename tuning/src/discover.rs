//! What the machine is: CPUs this process may use, NUMA nodes, memory, the kernel's socket buffer limits, and
//! the block device under the data directory. Everything is read from `/proc`, `/sys` and a few system calls;
//! whatever cannot be read (containers, virtual or network file systems) is reported as unknown (`None`, or
//! the device name `"unknown"`), never as an error.

pub use spate_core::runtime::parse_cpu_list;
use std::fs;
use std::path::{Path, PathBuf};

/// The name given to a device that cannot be identified.
pub const UNKNOWN: &str = "unknown";

/// The CPUs, memory and network limits of this machine, as this process sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    /// CPUs the kernel has online (`/sys/devices/system/cpu/online`).
    pub online_cpus: Vec<usize>,
    /// CPUs this process may run on (`sched_getaffinity`): what shards can be pinned to.
    pub allowed_cpus: Vec<usize>,
    /// NUMA nodes and their CPUs; one node holding every allowed CPU when `/sys` has none.
    pub numa_nodes: Vec<NumaNode>,
    /// Physical memory, in bytes (0 if unknown).
    pub physical_memory_bytes: u64,
    /// The cgroup (v2 `memory.max` or v1 `memory.limit_in_bytes`) memory limit, if one is set.
    pub cgroup_memory_limit_bytes: Option<u64>,
    /// `net.core.rmem_max` / `net.core.wmem_max`: the largest SO_RCVBUF / SO_SNDBUF a process may set.
    pub rmem_max_bytes: Option<u64>,
    /// See [`Machine::rmem_max_bytes`].
    pub wmem_max_bytes: Option<u64>,
    /// The third field of `net.ipv4.tcp_rmem` / `tcp_wmem`: how far the kernel's autotuning grows a buffer.
    pub tcp_rmem_autotune_max_bytes: Option<u64>,
    /// See [`Machine::tcp_rmem_autotune_max_bytes`].
    pub tcp_wmem_autotune_max_bytes: Option<u64>,
}

impl Machine {
    /// Memory the broker may count on: physical memory, or the cgroup limit if lower.
    pub fn usable_memory_bytes(&self) -> u64 {
        match self.cgroup_memory_limit_bytes {
            Some(limit) if self.physical_memory_bytes == 0 || limit < self.physical_memory_bytes => limit,
            _ => self.physical_memory_bytes,
        }
    }

    /// The allowed CPUs ordered node by node (so consecutive shards share a node).
    pub fn allowed_cpus_by_node(&self) -> Vec<usize> {
        let mut ordered = Vec::with_capacity(self.allowed_cpus.len());
        for node in &self.numa_nodes {
            ordered.extend(node.cpus.iter().filter(|cpu| self.allowed_cpus.contains(cpu)));
        }
        for cpu in &self.allowed_cpus {
            if !ordered.contains(cpu) {
                ordered.push(*cpu);
            }
        }
        ordered
    }
}

/// One NUMA node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumaNode {
    /// Its number (`nodeN`).
    pub id: usize,
    /// Its CPUs.
    pub cpus: Vec<usize>,
}

/// The block device holding the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskInfo {
    /// The data directory (or the nearest existing ancestor that was examined).
    pub path: PathBuf,
    /// `st_dev` as `MAJOR:MINOR`.
    pub dev: String,
    /// The whole disk's name (`nvme0n1` for partition `nvme0n1p2`), or [`UNKNOWN`].
    pub device: String,
    /// `queue/rotational`.
    pub rotational: Option<bool>,
    /// `queue/logical_block_size`: the O_DIRECT alignment.
    pub logical_block_size: Option<u64>,
    /// `queue/nr_requests`: the block layer's queue depth per hardware queue.
    pub nr_requests: Option<u64>,
    /// `queue/io_poll`: whether the device has polled queues (glommio then uses an IOPOLL ring by itself).
    pub io_poll: Option<bool>,
    /// Bytes free for this user on the file system.
    pub free_bytes: Option<u64>,
}

/// Reads everything about the machine.
pub fn machine() -> Machine {
    let online_cpus = read_trimmed("/sys/devices/system/cpu/online").and_then(|text| parse_cpu_list(&text).ok());
    let allowed_cpus = sched_affinity().unwrap_or_else(|| online_cpus.clone().unwrap_or_default());
    let mut numa_nodes = numa_nodes(Path::new("/sys/devices/system/node"));
    if numa_nodes.is_empty() {
        numa_nodes.push(NumaNode { id: 0, cpus: allowed_cpus.clone() });
    }
    let tcp_max = |path: &str| read_trimmed(path).and_then(|text| text.split_whitespace().nth(2)?.parse().ok());
    Machine {
        online_cpus: online_cpus.unwrap_or_else(|| allowed_cpus.clone()),
        allowed_cpus,
        numa_nodes,
        physical_memory_bytes: physical_memory_bytes(),
        cgroup_memory_limit_bytes: cgroup_memory_limit(),
        rmem_max_bytes: read_number("/proc/sys/net/core/rmem_max"),
        wmem_max_bytes: read_number("/proc/sys/net/core/wmem_max"),
        tcp_rmem_autotune_max_bytes: tcp_max("/proc/sys/net/ipv4/tcp_rmem"),
        tcp_wmem_autotune_max_bytes: tcp_max("/proc/sys/net/ipv4/tcp_wmem"),
    }
}

/// Finds the block device under `data_dir` (or its nearest existing ancestor, for a directory not yet made).
pub fn disk(data_dir: &Path) -> DiskInfo {
    let mut path = data_dir.to_path_buf();
    while !path.exists() {
        match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => path = parent.to_path_buf(),
            _ => {
                path = PathBuf::from(".");
                break;
            }
        }
    }
    let (major, minor) = match device_numbers(&path) {
        Some(numbers) => numbers,
        None => return DiskInfo::unknown(path, String::from(UNKNOWN)),
    };
    let mut info = disk_from_sysfs(Path::new("/sys"), major, minor);
    info.path = path.clone();
    info.free_bytes = free_bytes(&path);
    info
}

impl DiskInfo {
    fn unknown(path: PathBuf, dev: String) -> Self {
        DiskInfo {
            path,
            dev,
            device: String::from(UNKNOWN),
            rotational: None,
            logical_block_size: None,
            nr_requests: None,
            io_poll: None,
            free_bytes: None,
        }
    }
}

/// Reads device `major:minor` under `sys_root` (`/sys` in production; a fake tree in tests): follows
/// `dev/block/MAJ:MIN`, and from a partition walks up to the whole disk, whose `queue/` has the settings.
pub fn disk_from_sysfs(sys_root: &Path, major: u64, minor: u64) -> DiskInfo {
    let dev = format!("{major}:{minor}");
    let mut info = DiskInfo::unknown(PathBuf::new(), dev.clone());
    let Ok(mut dir) = fs::canonicalize(sys_root.join("dev/block").join(&dev)) else {
        // Major 0 (overlayfs, tmpfs, btrfs subvolumes, NFS) has no block device: stays unknown.
        return info;
    };
    if dir.join("partition").exists() {
        if let Some(parent) = dir.parent() {
            dir = parent.to_path_buf();
        }
    }
    let name = dir.file_name().map(|name| name.to_string_lossy().into_owned());
    info.device = name.unwrap_or_else(|| String::from(UNKNOWN));
    let queue = dir.join("queue");
    info.rotational = read_number(queue.join("rotational")).map(|value| value != 0);
    info.logical_block_size = read_number(queue.join("logical_block_size"));
    info.nr_requests = read_number(queue.join("nr_requests"));
    info.io_poll = read_number(queue.join("io_poll")).map(|value| value != 0);
    info
}

/// Formats CPUs the way [`parse_cpu_list`] (re-exported from `spate_core`) reads them, with ranges: `0-3,8`.
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut index = 0;
    while index < sorted.len() {
        let start = sorted[index];
        let mut end = start;
        while index + 1 < sorted.len() && sorted[index + 1] == end + 1 {
            index += 1;
            end += 1;
        }
        parts.push(if end == start { start.to_string() } else { format!("{start}-{end}") });
        index += 1;
    }
    parts.join(",")
}

/// NUMA nodes from `<root>/nodeN/cpulist`, by node number; nodes without CPUs are left out.
pub fn numa_nodes(root: &Path) -> Vec<NumaNode> {
    let Ok(entries) = fs::read_dir(root) else { return Vec::new() };
    let mut nodes: Vec<NumaNode> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let id = name.strip_prefix("node")?.parse().ok()?;
            let cpus = parse_cpu_list(&read_trimmed(entry.path().join("cpulist"))?).ok()?;
            (!cpus.is_empty()).then_some(NumaNode { id, cpus })
        })
        .collect();
    nodes.sort_by_key(|node| node.id);
    nodes
}

fn sched_affinity() -> Option<Vec<usize>> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set; sched_getaffinity writes at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is this thread.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return None;
    }
    // SAFETY: CPU_ISSET only reads the set for CPU numbers below CPU_SETSIZE.
    let cpus: Vec<usize> =
        (0..libc::CPU_SETSIZE as usize).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) }).collect();
    (!cpus.is_empty()).then_some(cpus)
}

fn physical_memory_bytes() -> u64 {
    // SAFETY: sysconf only reads system constants.
    let (pages, page_size) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    u64::try_from(pages).unwrap_or(0).saturating_mul(u64::try_from(page_size).unwrap_or(0))
}

fn cgroup_memory_limit() -> Option<u64> {
    // "max" (v2) does not parse; v1's "no limit" is a huge number, which the min() with RAM absorbs.
    read_number("/sys/fs/cgroup/memory.max").or_else(|| read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
}

fn device_numbers(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let dev = fs::metadata(path).ok()?.dev();
    Some((u64::from(libc::major(dev)), u64::from(libc::minor(dev))))
}

/// Bytes available to an unprivileged user on the file system holding `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: an all-zero statvfs is valid; statvfs fills it for a NUL-terminated path.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is NUL-terminated and `stat` is a valid out-pointer.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    fs::read_to_string(path).ok().map(|text| text.trim().to_owned())
}

fn read_number(path: impl AsRef<Path>) -> Option<u64> {
    read_trimmed(path)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_and_format() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n").unwrap(), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list("5").unwrap(), vec![5]);
        assert_eq!(parse_cpu_list("").unwrap(), Vec::<usize>::new());
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("a").is_err());
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(format_cpu_list(&[1]), "1");
        assert_eq!(parse_cpu_list(&format_cpu_list(&[4, 2, 3, 9])).unwrap(), vec![2, 3, 4, 9]);
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn a_partition_is_walked_up_to_its_disk() {
        let sys = tempfile::tempdir().unwrap();
        let disk = sys.path().join("devices/pci0/nvme/nvme0n1");
        write(&disk.join("queue/rotational"), "0\n");
        write(&disk.join("queue/logical_block_size"), "4096\n");
        write(&disk.join("queue/nr_requests"), "1023\n");
        write(&disk.join("queue/io_poll"), "1\n");
        write(&disk.join("nvme0n1p2/partition"), "2\n");
        fs::create_dir_all(sys.path().join("dev/block")).unwrap();
        std::os::unix::fs::symlink(disk.join("nvme0n1p2"), sys.path().join("dev/block/259:2")).unwrap();
        std::os::unix::fs::symlink(&disk, sys.path().join("dev/block/259:0")).unwrap();
        for minor in [2, 0] {
            let info = disk_from_sysfs(sys.path(), 259, minor);
            assert_eq!(info.device, "nvme0n1");
            assert_eq!(info.rotational, Some(false));
            assert_eq!(info.logical_block_size, Some(4096));
            assert_eq!(info.nr_requests, Some(1023));
            assert_eq!(info.io_poll, Some(true));
        }
    }

    #[test]
    fn a_virtual_device_is_unknown() {
        let sys = tempfile::tempdir().unwrap();
        let info = disk_from_sysfs(sys.path(), 0, 52);
        assert_eq!((info.device.as_str(), info.dev.as_str()), (UNKNOWN, "0:52"));
        assert_eq!((info.rotational, info.logical_block_size, info.nr_requests), (None, None, None));
    }

    #[test]
    fn numa_nodes_from_cpulists() {
        let root = tempfile::tempdir().unwrap();
        write(&root.path().join("node1/cpulist"), "4-7\n");
        write(&root.path().join("node0/cpulist"), "0-3\n");
        write(&root.path().join("node2/cpulist"), "\n");
        write(&root.path().join("possible"), "0-2\n");
        let nodes = numa_nodes(root.path());
        assert_eq!(nodes, vec![NumaNode { id: 0, cpus: vec![0, 1, 2, 3] }, NumaNode { id: 1, cpus: vec![4, 5, 6, 7] }]);
        let machine = Machine {
            online_cpus: (0..8).collect(),
            allowed_cpus: vec![5, 1, 6],
            numa_nodes: nodes,
            physical_memory_bytes: 8 << 30,
            cgroup_memory_limit_bytes: Some(2 << 30),
            rmem_max_bytes: None,
            wmem_max_bytes: None,
            tcp_rmem_autotune_max_bytes: None,
            tcp_wmem_autotune_max_bytes: None,
        };
        assert_eq!(machine.allowed_cpus_by_node(), vec![1, 5, 6]);
        assert_eq!(machine.usable_memory_bytes(), 2 << 30);
    }

    #[test]
    fn this_machine_is_discovered() {
        let machine = machine();
        assert!(!machine.allowed_cpus.is_empty());
        assert!(machine.physical_memory_bytes > 0);
        let dir = tempfile::tempdir().unwrap();
        let info = disk(&dir.path().join("not/yet/made"));
        assert_eq!(info.path, dir.path());
        assert!(info.free_bytes.is_some());
    }
}
