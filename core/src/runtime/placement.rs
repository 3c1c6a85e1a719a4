//! Which CPUs the shards run on: the `--cores` syntax and the CPUs this process may use.

use std::fmt;
use std::str::FromStr;

/// The `--cores` setting, before it is checked against the CPUs this process may use.
///
/// Syntax: a single number is a **count** (`"2"`: the first two allowed CPUs); anything with a comma
/// or a dash is a **list of CPU ids** (`"0,1"`, `"2-5"`, `"0,4-7"`; a single CPU id is written `"3,"`
/// or `"3-3"`). `"all"` (the default) is every allowed CPU.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CoreSpec {
    /// Every CPU in the process's affinity mask.
    #[default]
    All,
    /// The first `n` CPUs of the affinity mask.
    Count(usize),
    /// Exactly these CPU ids, in this order (shard `i` runs on the `i`-th).
    List(Vec<usize>),
}

/// A `--cores` value that does not parse, or that names CPUs this process cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementError(String);

impl fmt::Display for PlacementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlacementError {}

impl FromStr for CoreSpec {
    type Err = PlacementError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("all") {
            return Ok(CoreSpec::All);
        }
        if !text.contains([',', '-']) {
            let count = parse_number(text)?;
            if count == 0 {
                return Err(PlacementError("--cores: the shard count must be at least 1".into()));
            }
            return Ok(CoreSpec::Count(count));
        }
        let cpus = parse_cpu_list(text)?;
        if cpus.is_empty() {
            return Err(PlacementError(format!("--cores: {text:?} names no CPU")));
        }
        let mut sorted = cpus.clone();
        sorted.sort_unstable();
        if sorted.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(PlacementError(format!("--cores: {text:?} names a CPU twice")));
        }
        Ok(CoreSpec::List(cpus))
    }
}

/// A CPU list as Linux writes them (`0-3,8`, also in sysfs `cpulist` files), in the order given;
/// empty parts are skipped, so `""` is an empty list. Backwards ranges and non-numbers are errors.
pub fn parse_cpu_list(text: &str) -> Result<Vec<usize>, PlacementError> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').map(str::trim).filter(|part| !part.is_empty()) {
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (parse_number(first.trim())?, parse_number(last.trim())?);
                if first > last {
                    return Err(PlacementError(format!("CPU list: range {part} is backwards")));
                }
                cpus.extend(first..=last);
            }
            None => cpus.push(parse_number(part)?),
        }
    }
    Ok(cpus)
}

fn parse_number(text: &str) -> Result<usize, PlacementError> {
    text.parse().map_err(|_| PlacementError(format!("--cores: {text:?} is not a number")))
}

impl CoreSpec {
    /// The CPU ids to pin shards to, one per shard, checked against `allowed` (the process's
    /// affinity mask, ascending).
    pub fn resolve(&self, allowed: &[usize]) -> Result<Vec<usize>, PlacementError> {
        match self {
            CoreSpec::All if allowed.is_empty() => Err(PlacementError("no CPU is available to this process".into())),
            CoreSpec::All => Ok(allowed.to_vec()),
            CoreSpec::Count(count) if *count > allowed.len() => Err(PlacementError(format!(
                "--cores {count}: only {} CPUs are available to this process ({})",
                allowed.len(),
                format_cpus(allowed)
            ))),
            CoreSpec::Count(count) => Ok(allowed[..*count].to_vec()),
            CoreSpec::List(cpus) => match cpus.iter().find(|cpu| !allowed.contains(cpu)) {
                Some(cpu) => Err(PlacementError(format!(
                    "--cores: CPU {cpu} is not available to this process (allowed: {})",
                    format_cpus(allowed)
                ))),
                None => Ok(cpus.clone()),
            },
        }
    }
}

/// `[0, 1, 2, 5]` as `"0,1,2,5"`.
pub fn format_cpus(cpus: &[usize]) -> String {
    cpus.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
}

/// The CPUs in this process's affinity mask (what `taskset`/cgroups allow), ascending.
pub fn available_cpus() -> std::io::Result<Vec<usize>> {
    // SAFETY: `set` is a plain bitmask that sched_getaffinity fills in; the size passed is its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let max_cpus = 8 * std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: CPU_ISSET only reads the mask, for indices below its capacity.
    Ok((0..max_cpus).filter(|cpu| unsafe { libc::CPU_ISSET(*cpu, &set) }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counts_lists_and_ranges() {
        assert_eq!("all".parse(), Ok(CoreSpec::All));
        assert_eq!("2".parse(), Ok(CoreSpec::Count(2)));
        assert_eq!(" 4 ".parse(), Ok(CoreSpec::Count(4)));
        assert_eq!("0,1".parse(), Ok(CoreSpec::List(vec![0, 1])));
        assert_eq!("3,".parse(), Ok(CoreSpec::List(vec![3])));
        assert_eq!("2-4".parse(), Ok(CoreSpec::List(vec![2, 3, 4])));
        assert_eq!("0, 4-5".parse(), Ok(CoreSpec::List(vec![0, 4, 5])));
    }

    #[test]
    fn refuses_nonsense() {
        for bad in ["0", "", "x", "1,,a", "5-2", "0,0", "1-2,2", ",", "-1"] {
            assert!(bad.parse::<CoreSpec>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn resolves_against_the_affinity_mask() {
        let allowed = [0, 1, 2, 3];
        assert_eq!(CoreSpec::All.resolve(&allowed), Ok(vec![0, 1, 2, 3]));
        assert_eq!(CoreSpec::Count(2).resolve(&allowed), Ok(vec![0, 1]));
        assert_eq!(CoreSpec::List(vec![3, 1]).resolve(&allowed), Ok(vec![3, 1]));
        assert!(CoreSpec::Count(5).resolve(&allowed).is_err());
        assert!(CoreSpec::List(vec![4]).resolve(&allowed).is_err());
        assert!(CoreSpec::All.resolve(&[]).is_err());
    }

    #[test]
    fn this_process_has_at_least_one_cpu() {
        let cpus = available_cpus().unwrap();
        assert!(!cpus.is_empty());
        assert!(cpus.windows(2).all(|pair| pair[0] < pair[1]));
    }
}
