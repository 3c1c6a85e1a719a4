//! Unit tests for the in-memory disk (`mem.rs`).

use super::*;
use futures_lite::future::block_on;

const DIR: &str = "/data/p0";

fn path(name: &str) -> PathBuf {
    Path::new(DIR).join(name)
}

/// A file in a fresh disk, created in an existing directory.
fn setup(seed: u64) -> (MemDisk, MemFile) {
    let disk = MemDisk::new(seed);
    block_on(async {
        disk.create_dir_all(Path::new(DIR)).await.unwrap();
        let f = disk.open(&path("a.log"), OpenMode::CreateNew).await.unwrap();
        (disk, f)
    })
}

fn buf(f: &MemFile, len: usize, byte: u8) -> MemBuf {
    let mut b = f.alloc_buf(len);
    b.as_mut_slice().fill(byte);
    b
}

fn reopen(disk: &MemDisk) -> MemFile {
    block_on(disk.open(&path("a.log"), OpenMode::Existing)).unwrap()
}

fn contents(disk: &MemDisk) -> Vec<u8> {
    block_on(disk.read_file(&path("a.log"))).unwrap()
}

#[test]
fn write_read_and_sizes() {
    let (disk, f) = setup(1);
    block_on(async {
        assert!(f.alloc_buf(1024).as_slice().iter().all(|&b| b == 0xa5), "unspecified contents are not zeros");
        f.write_at(buf(&f, 1024, 7), 512).await.unwrap();
        assert_eq!(f.size().await.unwrap(), 1536);
        let r = f.read_at(500, 100).await.unwrap();
        assert_eq!(&r[..12], &[0; 12]);
        assert!(r[12..].iter().all(|&b| b == 7));
        assert_eq!(f.read_at(1500, 100).await.unwrap().len(), 36);
        assert!(f.read_at(5000, 10).await.unwrap().is_empty());
        f.preallocate(4096).await.unwrap();
        assert_eq!(f.size().await.unwrap(), 4096);
        f.preallocate(100).await.unwrap();
        assert_eq!(disk.file_len(&path("a.log")), Some(4096));
        f.truncate(1000).await.unwrap();
        assert_eq!(f.size().await.unwrap(), 1000);
        assert_eq!(disk.write_count(), 1);
        let err = f.write_at(buf(&f, 100, 1), 0).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = f.write_at(buf(&f, 512, 1), 100).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    });
}

#[test]
fn open_modes() {
    let (disk, _f) = setup(1);
    block_on(async {
        let e = disk.open(&path("a.log"), OpenMode::CreateNew).await.err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        let e = disk.open(&path("b.log"), OpenMode::Existing).await.err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let e = disk.open(Path::new("/nowhere/x.log"), OpenMode::CreateNew).await.err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    });
}

#[test]
fn synced_data_survives_every_crash_mode() {
    for mode in [CrashMode::DropUnsynced, CrashMode::KeepUnsynced, CrashMode::Random] {
        for seed in 0..20 {
            let (disk, f) = setup(seed);
            block_on(async {
                f.write_at(buf(&f, 2048, 1), 0).await.unwrap();
                f.sync_data().await.unwrap();
            });
            disk.crash(mode);
            assert_eq!(contents(&disk), vec![1; 2048], "{mode:?} seed {seed}");
        }
    }
}

#[test]
fn drop_unsynced_loses_unsynced_writes_and_keep_keeps_them() {
    let (disk, f) = setup(1);
    block_on(async {
        f.write_at(buf(&f, 512, 1), 0).await.unwrap();
        f.sync_data().await.unwrap();
        f.write_at(buf(&f, 512, 2), 0).await.unwrap();
        f.write_at(buf(&f, 1024, 3), 512).await.unwrap();
        assert_eq!(f.size().await.unwrap(), 1536);
    });
    disk.crash(CrashMode::DropUnsynced);
    assert_eq!(contents(&disk), vec![1; 512]);
    assert_eq!(disk.sync_count(), 1);

    let f = reopen(&disk);
    block_on(async {
        f.write_at(buf(&f, 512, 4), 512).await.unwrap();
    });
    disk.crash(CrashMode::KeepUnsynced);
    let c = contents(&disk);
    assert_eq!(&c[..512], &[1; 512]);
    assert_eq!(&c[512..], &[4; 512]);
}

#[test]
fn random_crash_keeps_synced_bytes_and_tears_only_whole_sectors() {
    let mut outcomes = BTreeSet::new();
    for seed in 0..300 {
        let (disk, f) = setup(seed);
        block_on(async {
            f.write_at(buf(&f, 2048, 0xAA), 0).await.unwrap();
            f.sync_data().await.unwrap();
            // Unsynced: an overwrite of synced data and an extension, each four sectors.
            f.write_at(buf(&f, 2048, 0xBB), 0).await.unwrap();
            f.write_at(buf(&f, 2048, 0xCC), 2048).await.unwrap();
        });
        disk.crash(CrashMode::Random);
        let c = contents(&disk);
        assert!(c.len() >= 2048 && c.len() <= 4096 && c.len().is_multiple_of(512), "seed {seed}: len {}", c.len());
        // First write: a prefix of sectors is 0xBB, the rest still the synced 0xAA.
        let bb = c[..2048].iter().take_while(|&&b| b == 0xBB).count();
        assert_eq!(bb % 512, 0, "seed {seed}");
        assert!(c[bb..2048].iter().all(|&b| b == 0xAA), "seed {seed}");
        // Second write: only ever a sector prefix.
        assert!(c[2048..].iter().all(|&b| b == 0xCC), "seed {seed}");
        outcomes.insert((bb, c.len()));
        // After a crash everything is durable: a second crash changes nothing.
        disk.crash(CrashMode::DropUnsynced);
        assert_eq!(contents(&disk), c);
    }
    // Whole, dropped and torn outcomes all happen.
    assert!(outcomes.contains(&(0, 2048)) && outcomes.contains(&(2048, 4096)));
    assert!(outcomes.iter().any(|&(bb, len)| (bb > 0 && bb < 2048) || (len > 2048 && len < 4096)));
}

#[test]
fn random_crash_is_deterministic_per_seed() {
    let run = |seed| {
        let (disk, f) = setup(seed);
        block_on(async {
            for i in 0..8u8 {
                f.write_at(buf(&f, 1536, i), u64::from(i) * 1024).await.unwrap();
            }
        });
        disk.crash(CrashMode::Random);
        contents(&disk)
    };
    assert_eq!(run(42), run(42));
    assert!((0..10).any(|s| run(s) != run(42)));
}

#[test]
fn injected_write_failures_change_nothing() {
    let (disk, f) = setup(1);
    block_on(async {
        f.write_at(buf(&f, 512, 1), 0).await.unwrap();
        disk.fail_next_writes(2);
        for _ in 0..2 {
            let e = f.write_at(buf(&f, 1024, 9), 0).await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::Other);
            assert_eq!(e.to_string(), "injected write failure");
        }
        assert_eq!(contents(&disk), vec![1; 512]);
        assert_eq!(disk.write_count(), 1);
        f.write_at(buf(&f, 512, 2), 0).await.unwrap();
        assert_eq!(contents(&disk), vec![2; 512]);
    });
}

#[test]
fn injected_sync_failures_make_nothing_durable() {
    let (disk, f) = setup(1);
    block_on(async {
        f.write_at(buf(&f, 512, 1), 0).await.unwrap();
        disk.fail_next_syncs(1);
        assert!(f.sync_data().await.is_err());
        assert_eq!(disk.sync_count(), 0);
    });
    disk.crash(CrashMode::DropUnsynced);
    assert!(contents(&disk).is_empty());
}

#[test]
fn stale_handles_fail_after_crash() {
    let (disk, f) = setup(1);
    disk.crash(CrashMode::KeepUnsynced);
    block_on(async {
        assert!(f.write_at(buf(&f, 512, 1), 0).await.is_err());
        assert!(f.read_at(0, 1).await.is_err());
        assert!(f.sync_data().await.is_err());
        assert!(f.size().await.is_err());
        assert!(f.truncate(0).await.is_err());
        assert!(f.close().await.is_err());
        let g = reopen(&disk);
        g.write_at(buf(&g, 512, 1), 0).await.unwrap();
        g.close().await.unwrap();
    });
    assert_eq!(contents(&disk), vec![1; 512]);
}

#[test]
fn truncate_is_durable_but_does_not_sync_data() {
    let (disk, f) = setup(1);
    block_on(async {
        f.write_at(buf(&f, 1024, 1), 0).await.unwrap();
        f.sync_data().await.unwrap();
        f.write_at(buf(&f, 1024, 2), 512).await.unwrap();
        f.truncate(1024).await.unwrap();
        assert_eq!(f.read_at(0, 2048).await.unwrap().len(), 1024);
    });
    disk.crash(CrashMode::KeepUnsynced);
    let c = contents(&disk);
    assert_eq!((&c[..512], &c[512..]), (&[1; 512][..], &[2; 512][..]));
    let f = reopen(&disk);
    block_on(async {
        f.write_at(buf(&f, 1024, 3), 0).await.unwrap();
        f.truncate(512).await.unwrap();
    });
    disk.crash(CrashMode::DropUnsynced);
    assert_eq!(contents(&disk), vec![1; 512]);
}

#[test]
fn preallocate_is_durable() {
    let (disk, f) = setup(1);
    block_on(f.preallocate(8192)).unwrap();
    disk.crash(CrashMode::DropUnsynced);
    assert_eq!(disk.file_len(&path("a.log")), Some(8192));
}

#[test]
fn corrupt_byte_flips_durably() {
    let (disk, f) = setup(1);
    block_on(async {
        f.write_at(buf(&f, 512, 0x0F), 0).await.unwrap();
        f.sync_data().await.unwrap();
        f.write_at(buf(&f, 512, 0x0F), 512).await.unwrap();
    });
    disk.corrupt_byte(&path("a.log"), 3);
    disk.corrupt_byte(&path("a.log"), 600);
    assert_eq!(contents(&disk)[3], 0xF0);
    block_on(f.sync_data()).unwrap();
    disk.crash(CrashMode::DropUnsynced);
    let c = contents(&disk);
    assert_eq!((c[3], c[600], c[4]), (0xF0, 0xF0, 0x0F));
}

#[test]
fn directory_operations() {
    let disk = MemDisk::new(1);
    block_on(async {
        let root = Path::new("/d");
        disk.create_dir_all(&root.join("t-0")).await.unwrap();
        disk.create_dir_all(&root.join("t-1/sub")).await.unwrap();
        disk.write_file_atomic(&root.join("meta"), b"v1").await.unwrap();
        disk.write_file_atomic(&root.join("meta"), b"v2").await.unwrap();
        assert_eq!(disk.read_file(&root.join("meta")).await.unwrap(), b"v2");
        assert_eq!(disk.list_dir(root).await.unwrap(), ["meta", "t-0", "t-1"]);
        assert_eq!(disk.file_names(root), ["meta"]);
        assert!(disk.exists(&root.join("t-1/sub")).await.unwrap());
        assert_eq!(disk.list_dir(&root.join("nope")).await.unwrap_err().kind(), io::ErrorKind::NotFound);

        let f = disk.open(&root.join("t-1/sub/0.log"), OpenMode::CreateNew).await.unwrap();
        f.write_at(f.alloc_buf(512), 0).await.unwrap();
        disk.rename(&root.join("t-1/sub/0.log"), &root.join("t-1/sub/1.log")).await.unwrap();
        assert_eq!(disk.file_names(&root.join("t-1/sub")), ["1.log"]);
        // The handle follows the inode, like a real file descriptor.
        f.write_at(f.alloc_buf(512), 512).await.unwrap();
        assert_eq!(disk.file_len(&root.join("t-1/sub/1.log")), Some(1024));

        disk.rename(&root.join("t-1"), &root.join("t-1.deleted")).await.unwrap();
        assert!(disk.exists(&root.join("t-1.deleted/sub/1.log")).await.unwrap());
        assert!(!disk.exists(&root.join("t-1")).await.unwrap());
        disk.remove_dir_all(&root.join("t-1.deleted")).await.unwrap();
        assert_eq!(disk.list_dir(root).await.unwrap(), ["meta", "t-0"]);
        // Unlinked but open: still usable until closed.
        assert_eq!(f.size().await.unwrap(), 1024);
        f.close().await.unwrap();

        disk.remove_file(&root.join("meta")).await.unwrap();
        assert_eq!(disk.remove_file(&root.join("meta")).await.unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(disk.list_dir(root).await.unwrap(), ["t-0"]);
    });
    // Directory operations are durable immediately.
    disk.crash(CrashMode::DropUnsynced);
    assert_eq!(block_on(disk.list_dir(Path::new("/d"))).unwrap(), ["t-0"]);
}

#[test]
fn trimmed_buffer_writes_only_its_length() {
    let (disk, f) = setup(1);
    let mut b = buf(&f, 2048, 5);
    b.trim(1024);
    assert_eq!(b.as_slice().len(), 1024);
    block_on(f.write_at(b, 0)).unwrap();
    assert_eq!(contents(&disk), vec![5; 1024]);
}
