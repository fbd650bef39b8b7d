//! The embedded write-ahead log: segment files under a directory, group-committed.
//!
//! Appends go to one writer thread. It takes every record waiting, gives each the next LSN,
//! writes them with one `write` and makes them durable with one `fsync`, then hands them to
//! the engine in order. Concurrent writers therefore share an fsync: that is what lets many
//! clients write durably at a rate far above one fsync per write.
//!
//! Recovery reads the segments in order and replays every record. A write cut short at the
//! very end of the log (a torn tail: the process died mid-write, so no reply was sent) is cut
//! off, with a log line saying how many bytes were dropped. Damage anywhere else stops the
//! start with the file and offset, unless the caller chooses to truncate there.
//!
//! Why not an existing crate: the log must hand records to the engine in LSN order right after
//! the fsync that covers them, share that fsync among writers, and recover with the torn-tail
//! and mid-log rules above. The crates that exist either own their threading model or hide the
//! frame boundaries recovery needs; the whole log here is a few hundred lines.

mod frame;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use crossbeam_channel::{Receiver, Sender};
use prism_dataflows::{CommitSink, Lsn, Ticket, WriteLog, WriteRecord};

use crate::codec;
use frame::{FrameReader, Next};

/// Where and how the log lives.
#[derive(Clone, Debug)]
pub struct WalOptions {
    pub dir: PathBuf,
    /// A segment is closed and a new one started once it reaches this size.
    pub segment_bytes: u64,
    /// On damage in the middle of the log: cut the log there (losing what follows) instead of
    /// refusing to start.
    pub truncate_corrupt: bool,
    /// Records up to this LSN are in a checkpoint already: replay starts after it.
    pub after: Lsn,
    /// The largest encoded record appended; a larger one fails its write (nothing written).
    pub max_record_bytes: usize,
}

/// The default `max_record_bytes`: what one gRPC request may carry.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 << 20;

impl WalOptions {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        WalOptions {
            dir: dir.into(),
            segment_bytes: 64 * 1024 * 1024,
            truncate_corrupt: false,
            after: 0,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("write-ahead log {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "write-ahead log {path} is damaged at byte offset {offset}: {reason}; \
         start with --wal-truncate-corrupt to cut the log there (records from that point are lost)"
    )]
    Corrupt { path: PathBuf, offset: u64, reason: String },
    #[error(
        "write-ahead log {path} starts at LSN {first}, but the state before it is in no readable checkpoint \
         (recovery has the state up to LSN {after}); restore the checkpoint that covers LSN {before}",
        before = first - 1
    )]
    Gap { path: PathBuf, first: Lsn, after: Lsn },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io { path: path.to_owned(), source }
}

/// What recovery found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recovery {
    pub records: u64,
    /// The LSN of the last record replayed; 0 for an empty log.
    pub last_lsn: Lsn,
    /// Bytes of a torn tail cut off the end of the log.
    pub torn_bytes: u64,
    /// Bytes dropped at a damaged place because `truncate_corrupt` was set.
    pub truncated_bytes: u64,
    /// The LSNs of the bulk-load markers replayed (`WriteRecord::bulk_load`): loads whose
    /// graph only a checkpoint at or after them holds, which recovery did not start from.
    pub bulk_loads: Vec<Lsn>,
}

/// The embedded log. Appending never blocks the caller: the record queues for the writer
/// thread, and its outcome reaches the engine through the [`CommitSink`].
pub struct EmbeddedWal {
    queue: Sender<(WriteRecord, Ticket)>,
    dir: PathBuf,
}

impl WriteLog for EmbeddedWal {
    fn append(&self, record: WriteRecord, ticket: Ticket) {
        // The writer thread only stops when this sender is dropped.
        let _ = self.queue.send((record, ticket));
    }
}

impl EmbeddedWal {
    /// Opens (or creates) the log in `options.dir`, replays every record into `sink`, and
    /// starts the writer thread.
    pub fn open(options: &WalOptions, sink: CommitSink) -> Result<(Arc<EmbeddedWal>, Recovery), WalError> {
        fs::create_dir_all(&options.dir).map_err(io_error(&options.dir))?;
        let mut segments = list_segments(&options.dir)?;
        let recovery = replay(&mut segments, options, &sink)?;
        // A checkpoint may cover more than the log still holds (its segments deleted).
        let next_lsn = recovery.last_lsn.max(options.after) + 1;
        let (path, file) = match segments.last() {
            Some((_, path)) => {
                let file = OpenOptions::new().append(true).open(path).map_err(io_error(path))?;
                (path.clone(), file)
            }
            None => create_segment(&options.dir, next_lsn)?,
        };
        let size = file.metadata().map_err(io_error(&path))?.len();
        let (queue, pending) = crossbeam_channel::unbounded();
        let writer = Writer {
            dir: options.dir.clone(),
            segment_bytes: options.segment_bytes,
            path,
            file,
            size,
            next_lsn,
            sink,
            broken: None,
            max_record_bytes: options.max_record_bytes.min(frame::MAX_PAYLOAD_BYTES as usize),
        };
        thread::Builder::new()
            .name("wal-writer".into())
            .spawn(move || writer.run(pending))
            .map_err(io_error(&options.dir))?;
        Ok((Arc::new(EmbeddedWal { queue, dir: options.dir.clone() }), recovery))
    }

    /// Deletes the segments whose records all lie at or below `lsn` (a checkpoint holds their
    /// state); never the segment being written. Returns how many went.
    pub fn truncate_before(&self, lsn: Lsn) -> Result<usize, WalError> {
        let segments = list_segments(&self.dir)?;
        let mut removed = 0;
        for pair in segments.windows(2) {
            let ((_, path), (next_first, _)) = (&pair[0], &pair[1]);
            if *next_first <= lsn + 1 {
                fs::remove_file(path).map_err(io_error(path))?;
                removed += 1;
            }
        }
        if removed > 0 {
            File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io_error(&self.dir))?;
        }
        Ok(removed)
    }
}

/// The segments in LSN order: `wal-<first lsn>.log`.
fn list_segments(dir: &Path) -> Result<Vec<(Lsn, PathBuf)>, WalError> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        let Some(first) = name.to_str().and_then(|n| n.strip_prefix("wal-")).and_then(|n| n.strip_suffix(".log"))
        else {
            continue;
        };
        if let Ok(first) = first.parse::<Lsn>() {
            segments.push((first, entry.path()));
        }
    }
    segments.sort();
    Ok(segments)
}

fn segment_path(dir: &Path, first_lsn: Lsn) -> PathBuf {
    dir.join(format!("wal-{first_lsn:020}.log"))
}

fn create_segment(dir: &Path, first_lsn: Lsn) -> Result<(PathBuf, File), WalError> {
    let path = segment_path(dir, first_lsn);
    let file = OpenOptions::new().create(true).append(true).open(&path).map_err(io_error(&path))?;
    // The new file's directory entry must be durable too, or a crash could lose the file.
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir))?;
    Ok((path, file))
}

/// Replays every segment into `sink`, cutting a torn tail; drops segments after a cut.
fn replay(segments: &mut Vec<(Lsn, PathBuf)>, options: &WalOptions, sink: &CommitSink) -> Result<Recovery, WalError> {
    let mut recovery = Recovery::default();
    let count = segments.len();
    let mut cut_at: Option<usize> = None;
    for (index, (_, path)) in segments.iter().enumerate() {
        let is_last = index + 1 == count;
        let file = File::open(path).map_err(io_error(path))?;
        let length = file.metadata().map_err(io_error(path))?.len();
        let mut reader = FrameReader::new(BufReader::with_capacity(1 << 20, file));
        let damage = loop {
            match reader.next().map_err(io_error(path))? {
                Next::End => break None,
                Next::Frame { lsn, payload } => {
                    // Segments a checkpoint covered are deleted; what is left must continue
                    // the state recovery starts from, or records would be silently missing.
                    if recovery.last_lsn == 0 && lsn > options.after + 1 {
                        return Err(WalError::Gap { path: path.clone(), first: lsn, after: options.after });
                    }
                    if recovery.last_lsn != 0 && lsn != recovery.last_lsn + 1 {
                        break Some(format!("LSN {lsn} follows LSN {}", recovery.last_lsn));
                    }
                    match codec::decode_record(&payload) {
                        Ok(record) => {
                            // Records a checkpoint holds are read (the chain is checked) but
                            // not handed over again.
                            if lsn > options.after {
                                if record.bulk_load {
                                    recovery.bulk_loads.push(lsn);
                                }
                                sink.committed(lsn, record, None);
                                recovery.records += 1;
                            }
                            recovery.last_lsn = lsn;
                        }
                        Err(e) => break Some(format!("record at LSN {lsn} does not decode: {e}")),
                    }
                }
                // A frame cut short, or garbled and ending the log, can only be the last write
                // before a crash: its writer was never answered.
                next @ (Next::Truncated | Next::Corrupt { .. }) if is_last && is_tail(&next, reader.offset, length) => {
                    recovery.torn_bytes = length - reader.offset;
                    truncate(path, reader.offset)?;
                    tracing::warn!(
                        path = %path.display(),
                        offset = reader.offset,
                        dropped_bytes = recovery.torn_bytes,
                        "cut a torn write off the end of the write-ahead log"
                    );
                    break None;
                }
                Next::Truncated => break Some("segment ends inside a frame, but later segments follow".into()),
                Next::Corrupt { reason, .. } => break Some(reason),
            }
        };
        if let Some(reason) = damage {
            if !options.truncate_corrupt {
                return Err(WalError::Corrupt { path: path.clone(), offset: reader.offset, reason });
            }
            recovery.truncated_bytes += length - reader.offset;
            truncate(path, reader.offset)?;
            tracing::warn!(
                path = %path.display(),
                offset = reader.offset,
                dropped_bytes = length - reader.offset,
                %reason,
                "truncated the write-ahead log at a damaged record, as asked"
            );
            cut_at = Some(index + 1);
            break;
        }
    }
    if let Some(keep) = cut_at {
        for (_, path) in segments.drain(keep..) {
            let length = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            recovery.truncated_bytes += length;
            fs::remove_file(&path).map_err(io_error(&path))?;
            tracing::warn!(path = %path.display(), "removed a segment after the truncation point");
        }
    }
    Ok(recovery)
}

/// Whether a bad frame at `offset` is the log's last: cut short, or ending exactly at its end.
fn is_tail(next: &Next, offset: u64, length: u64) -> bool {
    match next {
        Next::Truncated => true,
        Next::Corrupt { frame_bytes: Some(n), .. } => offset + n == length,
        _ => false,
    }
}

fn truncate(path: &Path, length: u64) -> Result<(), WalError> {
    let file = OpenOptions::new().write(true).open(path).map_err(io_error(path))?;
    file.set_len(length).and_then(|_| file.sync_all()).map_err(io_error(path))
}

/// The writer thread's state.
struct Writer {
    dir: PathBuf,
    segment_bytes: u64,
    path: PathBuf,
    file: File,
    size: u64,
    next_lsn: Lsn,
    sink: CommitSink,
    /// Set after a failed write or fsync: what is on disk is unknown from there on, so every
    /// later append fails rather than risk acknowledging a record that is not durable.
    broken: Option<String>,
    max_record_bytes: usize,
}

/// Most records one group commit takes, so that one batch's latency stays bounded.
const MAX_GROUP: usize = 4096;

impl Writer {
    fn run(mut self, pending: Receiver<(WriteRecord, Ticket)>) {
        let mut group = Vec::new();
        let mut buffer = Vec::new();
        while let Ok(first) = pending.recv() {
            group.push(first);
            group.extend(pending.try_iter().take(MAX_GROUP - 1));
            self.commit(&mut group, &mut buffer);
        }
    }

    fn commit(&mut self, group: &mut Vec<(WriteRecord, Ticket)>, buffer: &mut Vec<u8>) {
        if let Some(reason) = &self.broken {
            for (_, ticket) in group.drain(..) {
                self.sink.failed(ticket, format!("the log is unusable after an earlier error: {reason}"));
            }
            return;
        }
        buffer.clear();
        // A record recovery could not read back (a frame beyond its limit) is never written.
        let mut framed = 0;
        group.retain(|(record, ticket)| match codec::encode_within(record, self.max_record_bytes) {
            Ok(payload) => {
                frame::encode(self.next_lsn + framed, &payload, buffer);
                framed += 1;
                true
            }
            Err(too_large) => {
                self.sink.too_large(*ticket, too_large.to_string());
                false
            }
        });
        if group.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let written = self.file.write_all(buffer).and_then(|_| self.file.sync_data());
        metrics::histogram!("prism_wal_commit_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("prism_wal_group_records").record(group.len() as f64);
        if let Err(e) = written {
            let reason = format!("{}: {e}", self.path.display());
            tracing::error!(%reason, "write-ahead log append failed; refusing further writes");
            for (_, ticket) in group.drain(..) {
                self.sink.failed(ticket, reason.clone());
            }
            self.broken = Some(reason);
            return;
        }
        self.size += buffer.len() as u64;
        // Before the records go on, so that no one acknowledged sees an older end.
        metrics::gauge!("prism_log_end_lsn").set((self.next_lsn + group.len() as u64 - 1) as f64);
        for (record, ticket) in group.drain(..) {
            self.sink.committed(self.next_lsn, record, Some(ticket));
            self.next_lsn += 1;
        }
        if self.size >= self.segment_bytes {
            match create_segment(&self.dir, self.next_lsn) {
                Ok((path, file)) => {
                    self.path = path;
                    self.file = file;
                    self.size = 0;
                }
                // Keep appending to the current segment; a later rotation may succeed.
                Err(e) => tracing::warn!(error = %e, "could not start a new log segment"),
            }
        }
    }
}
