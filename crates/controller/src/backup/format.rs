//! The backup file: a passphrase-encrypted, authenticated stream of chunks.
//!
//! Owns: the header, key derivation, sealing and opening chunks, and every check a
//! reader makes before it hands out a byte. Does not own: what the plaintext means (the
//! archive, `super::archive`), nor where the bytes go.
//!
//! # Layout (version 1)
//!
//! ```text
//! offset  size  field
//!      0     8  magic "MOORBKUP"
//!      8     2  format version, big-endian (1)
//!     10     1  key derivation: 1 = PBKDF2-HMAC-SHA256
//!     11     1  cipher: 1 = AES-256-GCM
//!     12     4  PBKDF2 iterations, big-endian
//!     16     4  chunk size C: plaintext bytes of every chunk but the last, big-endian
//!     20    16  salt (random per file)
//!     36    16  header tag: AES-256-GCM over no plaintext, nonce FF×12, AAD bytes 0..36
//!     52     …  chunk 0, chunk 1, …, final chunk
//!
//! chunk i   = AES-256-GCM(key, nonce = 00 00 00 00 ‖ i as u64 BE,
//!                         aad = header[0..52] ‖ i as u64 BE ‖ last (1 byte: 0 or 1),
//!                         plaintext) ‖ 16-byte tag
//! key       = PBKDF2-HMAC-SHA256(passphrase, salt, iterations, 32 bytes)
//! ```
//!
//! Every chunk but the last holds exactly C plaintext bytes; the last holds fewer (zero
//! when the plaintext is a multiple of C, so a file always ends with a final chunk of
//! its own). A reader therefore knows from a chunk's length alone whether it is the last,
//! and the `last` byte in the AAD makes that claim authenticated:
//!
//! - a wrong passphrase fails the header tag, before any chunk is read;
//! - a changed header changes the AAD of every chunk (and the salt, the key);
//! - a changed, reordered, dropped or duplicated chunk fails its tag (index in the nonce
//!   and the AAD);
//! - a file cut at a chunk boundary lacks its final chunk; cut inside a chunk, the short
//!   piece fails as a final chunk.
//!
//! The key is unique per file (random salt), so a counter is a safe nonce. Iterations and
//! chunk size are read from the header but bounded, so a hostile file cannot make a
//! reader work for hours or allocate gigabytes. Plaintext is handed out chunk by chunk
//! after each chunk authenticates, but a consumer must not act on it for good until
//! [`BackupReader::next_chunk`] has returned `None` (the final chunk authenticated).

use std::io::{Read, Write};
use std::num::NonZeroU32;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::pbkdf2;
use ring::rand::{SecureRandom, SystemRandom};

/// The first bytes of every backup file.
pub const MAGIC: &[u8; 8] = b"MOORBKUP";
/// The format this build writes and reads.
pub const VERSION: u16 = 1;
/// Bytes before the first chunk.
pub const HEADER_LEN: usize = 52;
/// PBKDF2 iterations of a new file (OWASP's 2023 advice for PBKDF2-HMAC-SHA256).
pub const DEFAULT_ITERATIONS: u32 = 600_000;
/// The most iterations a reader accepts: a few seconds of work.
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// Plaintext bytes per chunk of a new file.
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
/// The chunk sizes a reader accepts.
pub const MIN_CHUNK_SIZE: u32 = 16;
pub const MAX_CHUNK_SIZE: u32 = 1024 * 1024;
/// The smallest passphrase accepted, in bytes.
pub const MIN_PASSPHRASE: usize = 1;

const KDF_PBKDF2_SHA256: u8 = 1;
const CIPHER_AES_256_GCM: u8 = 1;
const TAG_LEN: usize = 16;
const SALT_LEN: usize = 16;
const AUTHENTICATED_HEADER: usize = 36;
const HEADER_NONCE: [u8; NONCE_LEN] = [0xff; NONCE_LEN];

/// Why a backup file could not be written or read. Each says what was expected.
#[derive(Debug, thiserror::Error)]
pub enum BackupFileError {
    #[error("an empty passphrase protects nothing: give a passphrase")]
    EmptyPassphrase,
    #[error("{what}: {value} is out of range (expected {min}..={max})")]
    Parameter {
        what: &'static str,
        value: u32,
        min: u32,
        max: u32,
    },
    #[error("no random bytes for the salt")]
    Random,
    #[error("the file is {len} bytes long, shorter than a backup header ({HEADER_LEN} bytes)")]
    ShortHeader { len: usize },
    #[error("not a moor backup (expected the file to start with \"MOORBKUP\")")]
    Magic,
    #[error("backup format version {found}; this moor reads version {VERSION}")]
    Version { found: u16 },
    #[error("unknown {what} {found} in the header (this moor knows {known})")]
    Algorithm {
        what: &'static str,
        found: u8,
        known: u8,
    },
    #[error("wrong passphrase (or the file's header is damaged)")]
    WrongPassphrase,
    #[error(
        "chunk {index} (at byte {offset}) does not authenticate: the file is damaged, truncated or its chunks are out of order"
    )]
    Chunk { index: u64, offset: u64 },
    #[error(
        "the file ends after chunk {chunks} at byte {offset} without its final chunk: it is truncated"
    )]
    Truncated { chunks: u64, offset: u64 },
    #[error("the file has more than 2^64 chunks")]
    TooManyChunks,
    #[error("encryption failed")]
    Seal,
    #[error("{action} the backup: {source}")]
    Io {
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// How a new file is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub iterations: u32,
    pub chunk_size: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            iterations: DEFAULT_ITERATIONS,
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

impl Params {
    fn check(&self) -> Result<(), BackupFileError> {
        check_range("PBKDF2 iterations", self.iterations, 1, MAX_ITERATIONS)?;
        check_range(
            "chunk size",
            self.chunk_size,
            MIN_CHUNK_SIZE,
            MAX_CHUNK_SIZE,
        )
    }
}

fn check_range(what: &'static str, value: u32, min: u32, max: u32) -> Result<(), BackupFileError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(BackupFileError::Parameter {
            what,
            value,
            min,
            max,
        })
    }
}

fn derive_key(
    passphrase: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Result<LessSafeKey, BackupFileError> {
    let rounds = NonZeroU32::new(iterations).ok_or(BackupFileError::Parameter {
        what: "PBKDF2 iterations",
        value: iterations,
        min: 1,
        max: MAX_ITERATIONS,
    })?;
    let mut key = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        salt,
        passphrase,
        &mut key,
    );
    let unbound = UnboundKey::new(&AES_256_GCM, &key).map_err(|_| BackupFileError::Seal)?;
    key.fill(0);
    Ok(LessSafeKey::new(unbound))
}

fn chunk_nonce(index: u64) -> Nonce {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(nonce)
}

fn chunk_aad(header: &[u8; HEADER_LEN], index: u64, last: bool) -> [u8; HEADER_LEN + 9] {
    let mut aad = [0u8; HEADER_LEN + 9];
    aad[..HEADER_LEN].copy_from_slice(header);
    aad[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&index.to_be_bytes());
    aad[HEADER_LEN + 8] = u8::from(last);
    aad
}

fn io(action: &'static str) -> impl FnOnce(std::io::Error) -> BackupFileError {
    move |source| BackupFileError::Io { action, source }
}

/// Writes a backup file: the header at once, then a chunk each time `chunk_size` bytes
/// have come in, and the final chunk on [`finish`](Self::finish). Holds one chunk.
pub struct BackupWriter<W: Write> {
    out: W,
    key: LessSafeKey,
    header: [u8; HEADER_LEN],
    chunk_size: usize,
    buffer: Vec<u8>,
    index: u64,
}

impl<W: Write> std::fmt::Debug for BackupWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupWriter")
            .field("chunk_size", &self.chunk_size)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl<W: Write> BackupWriter<W> {
    /// Derives the key (slow on purpose: `params.iterations` rounds) and writes the header.
    pub fn new(mut out: W, passphrase: &[u8], params: Params) -> Result<Self, BackupFileError> {
        if passphrase.len() < MIN_PASSPHRASE {
            return Err(BackupFileError::EmptyPassphrase);
        }
        params.check()?;
        let mut salt = [0u8; SALT_LEN];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| BackupFileError::Random)?;
        let key = derive_key(passphrase, &salt, params.iterations)?;
        let mut header = [0u8; HEADER_LEN];
        header[0..8].copy_from_slice(MAGIC);
        header[8..10].copy_from_slice(&VERSION.to_be_bytes());
        header[10] = KDF_PBKDF2_SHA256;
        header[11] = CIPHER_AES_256_GCM;
        header[12..16].copy_from_slice(&params.iterations.to_be_bytes());
        header[16..20].copy_from_slice(&params.chunk_size.to_be_bytes());
        header[20..36].copy_from_slice(&salt);
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(HEADER_NONCE),
                Aad::from(&header[..AUTHENTICATED_HEADER]),
                &mut [],
            )
            .map_err(|_| BackupFileError::Seal)?;
        header[AUTHENTICATED_HEADER..].copy_from_slice(tag.as_ref());
        out.write_all(&header).map_err(io("write the header of"))?;
        let chunk_size = params.chunk_size as usize;
        Ok(BackupWriter {
            out,
            key,
            header,
            chunk_size,
            buffer: Vec::with_capacity(chunk_size + TAG_LEN),
            index: 0,
        })
    }

    /// Encrypts `data` as it fills chunks.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), BackupFileError> {
        while !data.is_empty() {
            let room = self.chunk_size - self.buffer.len();
            let take = room.min(data.len());
            self.buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buffer.len() == self.chunk_size {
                self.seal(false)?;
            }
        }
        Ok(())
    }

    /// Writes the final chunk and returns the output (not yet synced).
    pub fn finish(mut self) -> Result<W, BackupFileError> {
        self.seal(true)?;
        self.out.flush().map_err(io("write"))?;
        Ok(self.out)
    }

    fn seal(&mut self, last: bool) -> Result<(), BackupFileError> {
        let aad = chunk_aad(&self.header, self.index, last);
        self.key
            .seal_in_place_append_tag(
                chunk_nonce(self.index),
                Aad::from(&aad[..]),
                &mut self.buffer,
            )
            .map_err(|_| BackupFileError::Seal)?;
        self.out.write_all(&self.buffer).map_err(io("write"))?;
        self.buffer.clear();
        self.index = self
            .index
            .checked_add(1)
            .ok_or(BackupFileError::TooManyChunks)?;
        Ok(())
    }
}

/// Reads a backup file chunk by chunk, each authenticated before it is handed out.
pub struct BackupReader<R: Read> {
    input: R,
    key: LessSafeKey,
    header: [u8; HEADER_LEN],
    chunk_size: usize,
    buffer: Vec<u8>,
    index: u64,
    offset: u64,
    done: bool,
}

impl<R: Read> std::fmt::Debug for BackupReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupReader")
            .field("chunk_size", &self.chunk_size)
            .field("index", &self.index)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// Reads until `buf` is full or the input ends; returns how many bytes it holds.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> Result<usize, BackupFileError> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io("read")(e)),
        }
    }
    Ok(filled)
}

impl<R: Read> BackupReader<R> {
    /// Reads and checks the header and the passphrase. Nothing of the content is read.
    pub fn open(mut input: R, passphrase: &[u8]) -> Result<Self, BackupFileError> {
        if passphrase.len() < MIN_PASSPHRASE {
            return Err(BackupFileError::EmptyPassphrase);
        }
        let mut header = [0u8; HEADER_LEN];
        let len = read_full(&mut input, &mut header)?;
        if len >= MAGIC.len() && &header[0..8] != MAGIC {
            return Err(BackupFileError::Magic);
        }
        if len < HEADER_LEN {
            return Err(BackupFileError::ShortHeader { len });
        }
        let version = u16::from_be_bytes([header[8], header[9]]);
        if version != VERSION {
            return Err(BackupFileError::Version { found: version });
        }
        for (what, found, known) in [
            ("key derivation", header[10], KDF_PBKDF2_SHA256),
            ("cipher", header[11], CIPHER_AES_256_GCM),
        ] {
            if found != known {
                return Err(BackupFileError::Algorithm { what, found, known });
            }
        }
        let word = |at: usize| {
            u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let params = Params {
            iterations: word(12),
            chunk_size: word(16),
        };
        params.check()?;
        let key = derive_key(passphrase, &header[20..36], params.iterations)?;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&header[AUTHENTICATED_HEADER..]);
        key.open_in_place(
            Nonce::assume_unique_for_key(HEADER_NONCE),
            Aad::from(&header[..AUTHENTICATED_HEADER]),
            &mut tag,
        )
        .map_err(|_| BackupFileError::WrongPassphrase)?;
        let chunk_size = params.chunk_size as usize;
        Ok(BackupReader {
            input,
            key,
            header,
            chunk_size,
            buffer: vec![0; chunk_size + TAG_LEN],
            index: 0,
            offset: HEADER_LEN as u64,
            done: false,
        })
    }

    /// The next chunk's plaintext, authenticated; `None` once the final chunk was read.
    /// Only after `None` is the whole file known to be complete and unchanged.
    pub fn next_chunk(&mut self) -> Result<Option<&[u8]>, BackupFileError> {
        if self.done {
            return Ok(None);
        }
        self.buffer.resize(self.chunk_size + TAG_LEN, 0);
        let len = read_full(&mut self.input, &mut self.buffer)?;
        if len == 0 {
            return Err(BackupFileError::Truncated {
                chunks: self.index,
                offset: self.offset,
            });
        }
        let last = len < self.buffer.len();
        let damaged = BackupFileError::Chunk {
            index: self.index,
            offset: self.offset,
        };
        if len < TAG_LEN {
            return Err(damaged);
        }
        let aad = chunk_aad(&self.header, self.index, last);
        let plain_len = self
            .key
            .open_in_place(
                chunk_nonce(self.index),
                Aad::from(&aad[..]),
                &mut self.buffer[..len],
            )
            .map_err(|_| damaged)?
            .len();
        self.offset += len as u64;
        self.index = self
            .index
            .checked_add(1)
            .ok_or(BackupFileError::TooManyChunks)?;
        self.done = last;
        Ok(Some(&self.buffer[..plain_len]))
    }
}
