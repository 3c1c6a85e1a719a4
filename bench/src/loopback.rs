//! The loopback TCP baseline: how fast one connection moves bytes between two threads through the
//! kernel on this machine, pinned like the broker and the generator. Catch-up reads are compared
//! with it, since a fetch can go no faster than the socket that carries it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::Result;

const CHUNK_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, Serialize)]
pub struct LoopbackSummary {
    pub spate_bench: u32,
    pub baseline: &'static str,
    pub mib_per_s: f64,
    pub bytes: u64,
    pub duration_s: f64,
}

/// Sends for `duration` from a thread on `sender_cpu` to one on `receiver_cpu`.
pub fn measure(duration: Duration, sender_cpu: Option<usize>, receiver_cpu: Option<usize>) -> Result<LoopbackSummary> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let receiver = std::thread::spawn(move || -> std::io::Result<u64> {
        if let Some(cpu) = receiver_cpu {
            core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
        }
        let (mut stream, _) = listener.accept()?;
        let mut buffer = vec![0u8; CHUNK_BYTES];
        let mut total = 0u64;
        loop {
            match stream.read(&mut buffer)? {
                0 => return Ok(total),
                read => total += read as u64,
            }
        }
    });
    if let Some(cpu) = sender_cpu {
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
    }
    let mut stream = TcpStream::connect(address)?;
    let chunk = vec![0x5au8; CHUNK_BYTES];
    let started = Instant::now();
    while started.elapsed() < duration {
        stream.write_all(&chunk)?;
    }
    drop(stream);
    let bytes = receiver.join().map_err(|_| "receiver thread panicked")??;
    let seconds = started.elapsed().as_secs_f64();
    Ok(LoopbackSummary {
        spate_bench: 1,
        baseline: "loopback_tcp",
        mib_per_s: bytes as f64 / seconds / (1 << 20) as f64,
        bytes,
        duration_s: seconds,
    })
}
