//! Replacing a group of sealed segments with their cleaned version, crash-safely.
//!
//! The cleaned data of the group starting at `base` is written to `<base>.log.cleaned`, `<base>.index.cleaned`
//! and `<base>.timeindex.cleaned` (data fdatasync'd, indexes written atomically), and the end of the range it
//! replaces to `<base>.swap-end`. Renaming `<base>.log.cleaned` to `<base>.log.swap` is the commit point. After
//! it, [`complete_swap`] removes the other segments of the range, moves the new indexes in, renames the swap
//! file over `<base>.log` and removes `<base>.swap-end`. Every step of `complete_swap` can be repeated, and
//! [`recover`] (at open) repeats it for any swap file it finds, so a crash anywhere leaves either the old
//! segments (before the commit: the leftovers are removed) or the cleaned one (after it).

use crate::disk::{with_suffix, Disk};
use crate::segment::{parse_segment_name, segment_path, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use std::io;
use std::path::{Path, PathBuf};

const CLEANED_SUFFIX: &str = ".cleaned";
const SWAP_SUFFIX: &str = ".swap";
const SWAP_END_SUFFIX: &str = ".swap-end";

/// `<base><suffix>.cleaned`: the cleaner's output before the commit.
pub(crate) fn cleaned_path(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    with_suffix(&segment_path(dir, base, suffix), CLEANED_SUFFIX)
}

fn swap_path(dir: &Path, base: i64) -> PathBuf {
    with_suffix(&segment_path(dir, base, LOG_SUFFIX), SWAP_SUFFIX)
}

fn swap_end_path(dir: &Path, base: i64) -> PathBuf {
    segment_path(dir, base, SWAP_END_SUFFIX)
}

async fn remove_if_exists<D: Disk>(disk: &D, path: &Path) -> io::Result<()> {
    match disk.remove_file(path).await {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// Removes what an earlier, uncommitted attempt at cleaning the group at `base` left.
pub(crate) async fn remove_attempt<D: Disk>(disk: &D, dir: &Path, base: i64) -> io::Result<()> {
    for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
        remove_if_exists(disk, &cleaned_path(dir, base, suffix)).await?;
    }
    remove_if_exists(disk, &swap_end_path(dir, base)).await
}

/// Commits the cleaned files of the group `[base, end)` (all written and durable) and completes the swap.
pub(crate) async fn commit_swap<D: Disk>(disk: &D, dir: &Path, base: i64, end: i64) -> io::Result<()> {
    disk.write_file_atomic(&swap_end_path(dir, base), end.to_string().as_bytes()).await?;
    disk.rename(&cleaned_path(dir, base, LOG_SUFFIX), &swap_path(dir, base)).await?;
    complete_swap(disk, dir, base, end).await
}

/// Finishes a committed swap; idempotent.
async fn complete_swap<D: Disk>(disk: &D, dir: &Path, base: i64, end: i64) -> io::Result<()> {
    let mut replaced: Vec<i64> = disk
        .list_dir(dir)
        .await?
        .iter()
        .filter_map(|name| parse_segment_name(name))
        .filter(|&other| base < other && other < end)
        .collect();
    replaced.sort_unstable();
    for other in replaced {
        // The .log first, as retention does: orphan indexes are removed at open.
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            remove_if_exists(disk, &segment_path(dir, other, suffix)).await?;
        }
    }
    for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
        let cleaned = cleaned_path(dir, base, suffix);
        if disk.exists(&cleaned).await? {
            disk.rename(&cleaned, &segment_path(dir, base, suffix)).await?;
        }
    }
    if disk.exists(&swap_path(dir, base)).await? {
        disk.rename(&swap_path(dir, base), &segment_path(dir, base, LOG_SUFFIX)).await?;
    }
    remove_if_exists(disk, &swap_end_path(dir, base)).await
}

/// At open, before segments are listed: completes committed swaps and removes uncommitted cleaner output.
pub(crate) async fn recover<D: Disk>(disk: &D, dir: &Path) -> io::Result<()> {
    let names = disk.list_dir(dir).await?;
    for name in &names {
        let Some(base) = name.strip_suffix(SWAP_SUFFIX).and_then(parse_segment_name) else { continue };
        let end = disk.read_file(&swap_end_path(dir, base)).await?;
        let end = std::str::from_utf8(&end).ok().and_then(|text| text.trim().parse::<i64>().ok()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unreadable swap end for segment {base} in {}", dir.display()),
            )
        })?;
        tracing::warn!(dir = %dir.display(), base_offset = base, end, "completing an interrupted cleaner swap");
        complete_swap(disk, dir, base, end).await?;
    }
    for name in disk.list_dir(dir).await? {
        if name.ends_with(CLEANED_SUFFIX) || name.ends_with(SWAP_END_SUFFIX) {
            tracing::info!(dir = %dir.display(), file = %name, "removing uncommitted cleaner output");
            disk.remove_file(&dir.join(&name)).await?;
        }
    }
    Ok(())
}
