//! The layer stream: decompressed, hashed and counted on the caller's thread, handed to
//! the extracting thread in large chunks.
//!
//! ```text
//! caller's thread                                   worker thread
//! input -> gunzip/unzstd -> sha256 + count --chunks--> ChunkReader (BufRead) -> tar
//!                       <------------- empty buffers ------
//! ```
//!
//! Decompressing and hashing overlap with the file system work, as `tar -xzf` overlaps
//! with its `gzip -d` child. The byte limit is enforced here, on the decompressed
//! stream, so a gzip bomb or an endless stream stops at `max_bytes` whatever the tar
//! inside says. Buffers go back to the producer so a layer costs a few allocations,
//! not one per chunk.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};

use super::{Compression, UnpackError};
use crate::image::digest::{Algorithm, Digest, Hasher};

/// Bytes per chunk: large enough that a big file is written in few system calls, a
/// multiple of the 512-byte tar block.
pub(super) const CHUNK: usize = 256 * 1024;

/// Chunks in flight between the threads.
pub(super) const DEPTH: usize = 4;

/// Read-ahead of the compressed input.
const INPUT_BUFFER: usize = 128 * 1024;

/// One filled buffer: the first `len` bytes of `buf` are stream data.
#[derive(Debug)]
pub(super) struct Chunk {
    buf: Vec<u8>,
    len: usize,
}

/// How producing stopped short.
#[derive(Debug)]
pub(super) enum ProduceError {
    Failed(UnpackError),
    /// The extracting side hung up: it failed, and its error is the one to report.
    ConsumerGone,
}

/// Reads all of `input` through the decompressor, hashing and counting the decompressed
/// bytes and sending them on in chunks. Returns the digest and size of the whole
/// decompressed stream (through its very end, past the tar's end-of-archive blocks).
pub(super) fn produce(
    input: impl Read,
    compression: Compression,
    algorithm: Algorithm,
    max_bytes: u64,
    full: SyncSender<Chunk>,
    empty: Receiver<Vec<u8>>,
) -> Result<(Digest, u64), ProduceError> {
    let mut reader: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(
            BufReader::with_capacity(INPUT_BUFFER, input),
        )),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(INPUT_BUFFER, input))
                .map_err(|source| read_error(compression, source))?,
        ),
    };
    let mut hasher = Hasher::new(algorithm);
    let mut count: u64 = 0;
    loop {
        let mut buf = match empty.try_recv() {
            Ok(buf) => buf,
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => vec![0; CHUNK],
        };
        // Never read more than one byte past the limit, so an endless stream stops there.
        let budget = max_bytes.saturating_sub(count).saturating_add(1);
        let want = usize::try_from(budget).map_or(CHUNK, |b| b.min(CHUNK));
        let len = fill(&mut reader, &mut buf[..want])
            .map_err(|source| read_error(compression, source))?;
        hasher.update(&buf[..len]);
        count += len as u64;
        if count > max_bytes {
            return Err(ProduceError::Failed(UnpackError::TooManyBytes {
                limit: max_bytes,
            }));
        }
        if len == 0 {
            return Ok((hasher.finish(), count));
        }
        if full.send(Chunk { buf, len }).is_err() {
            return Err(ProduceError::ConsumerGone);
        }
        if len < want {
            return Ok((hasher.finish(), count));
        }
    }
}

fn read_error(compression: Compression, source: io::Error) -> ProduceError {
    ProduceError::Failed(UnpackError::Read {
        compression: compression.name(),
        source,
    })
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn fill(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The extracting side: chunks in, a `BufRead` out. The stream ends when the producer
/// hangs up (finished or failed: the caller tells which).
#[derive(Debug)]
pub(super) struct ChunkReader {
    full: Receiver<Chunk>,
    empty: SyncSender<Vec<u8>>,
    current: Option<Chunk>,
    pos: usize,
}

impl ChunkReader {
    pub(super) fn new(full: Receiver<Chunk>, empty: SyncSender<Vec<u8>>) -> Self {
        ChunkReader {
            full,
            empty,
            current: None,
            pos: 0,
        }
    }

    /// Reads and drops everything still to come, so the producer hashes the stream to
    /// its end.
    pub(super) fn drain(&mut self) {
        self.recycle();
        while let Ok(chunk) = self.full.recv() {
            let _ = self.empty.try_send(chunk.buf);
        }
    }

    fn recycle(&mut self) {
        if let Some(chunk) = self.current.take() {
            // A full return queue only means the producer has buffers to spare.
            let _ = self.empty.try_send(chunk.buf);
        }
        self.pos = 0;
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ChunkReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let exhausted = self.current.as_ref().is_none_or(|c| self.pos >= c.len);
        if exhausted {
            self.recycle();
            // A closed channel is the end of the stream.
            self.current = self.full.recv().ok();
        }
        Ok(match &self.current {
            Some(chunk) => &chunk.buf[self.pos..chunk.len],
            None => &[],
        })
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;

    #[test]
    fn producer_hashes_everything_and_reader_sees_it_in_order() {
        let data: Vec<u8> = (0..(3 * CHUNK + 100)).map(|i| (i % 251) as u8).collect();
        let (full_tx, full_rx) = sync_channel(DEPTH);
        let (empty_tx, empty_rx) = sync_channel(DEPTH + 2);
        let mut reader = ChunkReader::new(full_rx, empty_tx);
        let (got, produced) = std::thread::scope(|s| {
            let consumer = s.spawn(move || {
                let mut got = Vec::new();
                reader.read_to_end(&mut got).expect("read");
                got
            });
            let produced = produce(
                &data[..],
                Compression::None,
                Algorithm::Sha256,
                u64::MAX,
                full_tx,
                empty_rx,
            );
            (consumer.join().expect("join"), produced)
        });
        assert_eq!(got, data);
        let (digest, count) = produced.expect("produce");
        assert_eq!(count, data.len() as u64);
        assert_eq!(digest, Digest::sha256(&data));
    }

    #[test]
    fn producer_stops_one_byte_past_the_limit() {
        let (full_tx, full_rx) = sync_channel(DEPTH);
        let (_empty_tx, empty_rx) = sync_channel(DEPTH + 2);
        let drain = std::thread::spawn(move || full_rx.iter().count());
        let result = produce(
            io::repeat(0),
            Compression::None,
            Algorithm::Sha256,
            1000,
            full_tx,
            empty_rx,
        );
        assert!(matches!(
            result,
            Err(ProduceError::Failed(UnpackError::TooManyBytes {
                limit: 1000
            }))
        ));
        drain.join().expect("join");
    }
}
