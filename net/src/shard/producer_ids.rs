//! Producer ids for InitProducerId, handed out by the controller (shard 0) in blocks.
//!
//! `<data-dir>/__cluster_metadata/producer_ids.json` holds `{"next_block": N}`: every id below `N` may
//! already have been handed out. Ids are given from memory until the current block is used up; then
//! the next block's end is written (temp file, fsync, rename, fsync of the directory) *before* any id
//! of it is given. A restart starts at the stored `next_block`, so an id is never handed out twice,
//! at the cost of skipping the rest of the block that was in use.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::topics::METADATA_DIR;

/// The file's name in [`METADATA_DIR`].
pub const PRODUCER_IDS_FILE: &str = "producer_ids.json";
/// Ids reserved per write of the file.
pub const BLOCK_SIZE: i64 = 1000;

#[derive(Serialize, Deserialize)]
struct ProducerIdsFile {
    next_block: i64,
}

/// The allocator.
#[derive(Debug)]
pub struct ProducerIds {
    dir: PathBuf,
    next: i64,
    block_end: i64,
}

impl ProducerIds {
    /// Loads the allocator state of `data_dir` (ids from 0 if there is no file yet).
    pub fn load(data_dir: &Path) -> Result<ProducerIds, String> {
        let dir = data_dir.join(METADATA_DIR);
        let path = dir.join(PRODUCER_IDS_FILE);
        let next = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let file: ProducerIdsFile =
                    serde_json::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))?;
                if file.next_block < 0 {
                    return Err(format!("{}: negative next_block {}", path.display(), file.next_block));
                }
                file.next_block
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
            Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
        };
        Ok(ProducerIds { dir, next, block_end: next })
    }

    /// The next id; writes the next block first when the current one is used up.
    pub fn allocate(&mut self) -> std::io::Result<i64> {
        if self.next >= self.block_end {
            let end =
                self.next.checked_add(BLOCK_SIZE).ok_or_else(|| std::io::Error::other("producer ids exhausted"))?;
            self.persist(end)?;
            self.block_end = end;
        }
        let id = self.next;
        self.next += 1;
        Ok(id)
    }

    fn persist(&self, next_block: i64) -> std::io::Result<()> {
        if !self.dir.is_dir() {
            std::fs::create_dir_all(&self.dir)?;
        }
        let tmp = self.dir.join(format!("{PRODUCER_IDS_FILE}.tmp"));
        let mut file = std::fs::File::create(&tmp)?;
        let text = serde_json::to_string(&ProducerIdsFile { next_block }).map_err(std::io::Error::other)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, self.dir.join(PRODUCER_IDS_FILE))?;
        std::fs::File::open(&self.dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_reused_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut ids = ProducerIds::load(dir.path()).unwrap();
        let first: Vec<i64> = (0..3).map(|_| ids.allocate().unwrap()).collect();
        assert_eq!(first, vec![0, 1, 2]);
        let mut reloaded = ProducerIds::load(dir.path()).unwrap();
        assert_eq!(reloaded.allocate().unwrap(), BLOCK_SIZE, "the rest of the block is skipped");
        for _ in 0..BLOCK_SIZE {
            reloaded.allocate().unwrap();
        }
        assert_eq!(ProducerIds::load(dir.path()).unwrap().allocate().unwrap(), 3 * BLOCK_SIZE);
        std::fs::write(dir.path().join(METADATA_DIR).join(PRODUCER_IDS_FILE), "{").unwrap();
        assert!(ProducerIds::load(dir.path()).is_err());
    }
}
