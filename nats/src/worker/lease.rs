//! The lease stream's I/O: a replica's heartbeat, the book of what it has
//! observed of its group (members and leases), compare-and-set writes,
//! and the gate that lets a partition's owner act only while its lease
//! holds. The decisions themselves are in `assignment.rs`.

use std::{
    collections::BTreeMap,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use async_nats::{
    jetstream::{consumer::pull::OrderedConfig, consumer::DeliverPolicy},
    HeaderMap,
};
use futures::StreamExt;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::{
    assignment::{LeaseState, Observed, Standing, Timing},
    held::Gate,
    status::WorkerStatus,
};
use crate::{
    bus::Bus,
    envelope::{Envelope, KIND_HEADER, TRACE_HEADER},
    error::BusError,
    messages::{LeaseRecord, MemberRecord},
    topology::{LeaseSubject, StreamKind},
    Payload,
};

/// This replica's own heartbeat standing, shared by its partitions.
pub(crate) struct Heart {
    pub timing: Timing,
    standing: Mutex<Standing>,
    beats: watch::Sender<u64>,
}

impl Heart {
    pub fn new(timing: Timing) -> Self {
        Self {
            timing,
            standing: Mutex::new(Standing::default()),
            beats: watch::channel(0).0,
        }
    }

    fn beat_ok(&self, sent_at: Instant) {
        let epoch = {
            let mut standing = lock(&self.standing);
            standing.heartbeat_ok(sent_at, &self.timing);
            standing.epoch
        };
        self.beats.send_replace(epoch);
    }

    pub fn epoch(&self) -> u64 {
        lock(&self.standing).epoch
    }

    pub fn may_work(&self, epoch: u64) -> bool {
        lock(&self.standing).may_work(epoch, Instant::now(), &self.timing)
    }

    pub fn may_pull(&self, epoch: u64) -> bool {
        lock(&self.standing).may_pull(epoch, Instant::now(), &self.timing)
    }

    /// Waits until the last heartbeat is recent; returns the epoch then.
    pub async fn working(&self) -> u64 {
        let mut beats = self.beats.subscribe();
        loop {
            let epoch = self.epoch();
            if self.may_work(epoch) {
                return epoch;
            }
            let _ = tokio::time::timeout(self.timing.heartbeat_every, beats.changed()).await;
        }
    }
}

/// What a replica has observed of its group.
pub(crate) struct Book {
    pub members: BTreeMap<String, Observed>,
    pub leases: BTreeMap<u16, LeaseState>,
    pub watching_since: Instant,
    /// The initial read (the last record of every subject) is complete.
    pub caught_up: bool,
}

/// The group's lease and member subjects, followed live.
pub(crate) struct Group {
    pub bus: Bus,
    pub name: String,
    pub me: String,
    pub heart: Arc<Heart>,
    pub book: Mutex<Book>,
    pub changed: Notify,
}

impl Group {
    pub fn new(bus: Bus, name: &str, me: &str) -> Self {
        let timing = bus.worker_config().timing();
        Self {
            bus,
            name: name.to_string(),
            me: me.to_string(),
            heart: Arc::new(Heart::new(timing)),
            book: Mutex::new(Book {
                members: BTreeMap::new(),
                leases: BTreeMap::new(),
                watching_since: Instant::now(),
                caught_up: false,
            }),
            changed: Notify::new(),
        }
    }

    pub fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        lock(&self.book)
    }

    fn stream_name(&self) -> String {
        self.bus.topology().stream_name(StreamKind::Leases)
    }

    /// Publishes this replica's member record every `heartbeat_every`
    /// until `stop`; each stored one renews the replica's standing.
    pub async fn beat(&self, status: WorkerStatus, stop: CancellationToken) {
        let subject = self.bus.topology().group_member(&self.name, &self.me);
        loop {
            let sent_at = Instant::now();
            let record = status.report(&self.name);
            match self.publish(&subject, record, None).await {
                Ok(_) => self.heart.beat_ok(sent_at),
                Err(e) => tracing::warn!(group = %self.name, error = %e, "heartbeat not stored"),
            }
            status.standing(&self.name, self.heart.may_work(self.heart.epoch()));
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.heart.timing.heartbeat_every) => {}
            }
        }
    }

    /// The last member record this replica writes: it stopped, so nobody
    /// waits for its heartbeat to go stale.
    pub async fn say_goodbye(&self, status: &WorkerStatus) {
        let subject = self.bus.topology().group_member(&self.name, &self.me);
        let mut record = status.report(&self.name);
        record.accepting = false;
        record.stopped = true;
        record.ready = false;
        if let Err(e) = self.publish(&subject, record, None).await {
            tracing::warn!(group = %self.name, error = %e, "could not announce the stop");
        }
    }

    /// Announces at once whether this replica takes partitions.
    pub async fn announce(&self, status: &WorkerStatus) {
        let subject = self.bus.topology().group_member(&self.name, &self.me);
        let sent_at = Instant::now();
        if self
            .publish(&subject, status.report(&self.name), None)
            .await
            .is_ok()
        {
            self.heart.beat_ok(sent_at);
        }
    }

    async fn publish<T: Payload>(
        &self,
        subject: &str,
        body: T,
        expected_last: Option<u64>,
    ) -> Result<u64, BusError> {
        let envelope = Envelope::new(
            crate::envelope::new_id(),
            format!("lease:{}", self.me),
            body,
        );
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, envelope.id.as_str());
        headers.insert(TRACE_HEADER, envelope.trace_id.as_str());
        headers.insert(KIND_HEADER, T::KIND);
        if let Some(seq) = expected_last {
            headers.insert(
                "Nats-Expected-Last-Subject-Sequence",
                seq.to_string().as_str(),
            );
        }
        let published = self
            .bus
            .publish_with_headers(subject.to_string(), headers, envelope.encode()?)
            .await?;
        Ok(published.stream_sequence)
    }

    /// Writes a partition's lease if it is still at `expected`; returns the
    /// new sequence. [`BusError::Conflict`] when someone wrote first.
    pub async fn write_lease(
        &self,
        partition: u16,
        owner: Option<&str>,
        clean: bool,
        expected: u64,
    ) -> Result<u64, BusError> {
        let subject = self.bus.topology().partition_lease(&self.name, partition);
        let record = LeaseRecord {
            owner: owner.map(str::to_string),
            clean,
            written_at: chrono::Utc::now(),
        };
        let seq = self
            .publish(&subject, record.clone(), Some(expected))
            .await?;
        self.note_lease(partition, seq, &record);
        Ok(seq)
    }

    /// The sequence of a subject's last record, read from the server now.
    pub async fn last_seq(&self, subject: &str) -> Result<Option<u64>, BusError> {
        let stream = self
            .bus
            .jetstream()
            .get_stream_no_info(self.stream_name())
            .await
            .map_err(|e| BusError::Consumer {
                consumer: subject.to_string(),
                reason: e.to_string(),
            })?;
        match stream.get_last_raw_message_by_subject(subject).await {
            Ok(message) => Ok(Some(message.sequence)),
            Err(e)
                if e.kind()
                    == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
            {
                Ok(None)
            }
            Err(e) => Err(BusError::Consumer {
                consumer: subject.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// Re-reads a member's heartbeat from the server: `true` when it
    /// changed since the book last saw it (the book was behind: alive).
    pub async fn member_moved(&self, member: &str) -> Result<bool, BusError> {
        let subject = self.bus.topology().group_member(&self.name, member);
        let seq = self.last_seq(&subject).await?.unwrap_or(0);
        let mut book = self.book();
        let known = book.members.get(member).map(|o| o.seq).unwrap_or(0);
        if seq != known {
            if let Some(o) = book.members.get_mut(member) {
                o.seq = seq;
                o.since = Instant::now();
            }
            return Ok(true);
        }
        Ok(false)
    }

    /// Removes the member subjects of replicas gone for `after`.
    pub async fn forget_members(&self, gone: Vec<String>) {
        let Ok(stream) = self
            .bus
            .jetstream()
            .get_stream_no_info(self.stream_name())
            .await
        else {
            return;
        };
        for member in gone {
            let subject = self.bus.topology().group_member(&self.name, &member);
            if stream.purge().filter(subject).await.is_ok() {
                self.book().members.remove(&member);
                tracing::info!(group = %self.name, member, "forgot a replica long gone");
            }
        }
    }

    fn note_lease(&self, partition: u16, seq: u64, record: &LeaseRecord) {
        let mut book = self.book();
        let entry = book.leases.entry(partition).or_default();
        if seq >= entry.seq {
            *entry = LeaseState {
                seq,
                owner: record.owner.clone(),
                clean: record.clean,
            };
        }
    }

    /// Follows the group's subjects (the last record of each, then every
    /// change) into the book until `stop`.
    pub async fn watch(&self, stop: CancellationToken) {
        let filter = self.bus.topology().lease_group(&self.name);
        loop {
            if stop.is_cancelled() {
                return;
            }
            if let Err(e) = self.follow(&filter, &stop).await {
                tracing::warn!(group = %self.name, error = %e, "lease watch interrupted; resuming");
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    async fn follow(&self, filter: &str, stop: &CancellationToken) -> Result<(), String> {
        let stream = self
            .bus
            .jetstream()
            .get_stream(self.stream_name())
            .await
            .map_err(|e| e.to_string())?;
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: filter.to_string(),
                deliver_policy: DeliverPolicy::LastPerSubject,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        if consumer.cached_info().num_pending == 0 {
            self.caught_up();
        }
        let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                next = messages.next() => next,
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("the watch ended".into()),
            };
            let (seq, pending) = match message.info() {
                Ok(info) => (info.stream_sequence, info.pending),
                Err(_) => continue,
            };
            self.apply(message.subject.as_str(), seq, &message.payload);
            if pending == 0 {
                self.caught_up();
            }
            self.changed.notify_one();
        }
    }

    fn caught_up(&self) {
        let mut book = self.book();
        if !book.caught_up {
            book.caught_up = true;
            drop(book);
            self.changed.notify_one();
        }
    }

    fn apply(&self, subject: &str, seq: u64, payload: &[u8]) {
        match self.bus.topology().lease_subject(subject) {
            Some(LeaseSubject::Partition { partition, .. }) => {
                match Envelope::<LeaseRecord>::decode(payload) {
                    Ok(lease) => self.note_lease(partition, seq, &lease.body),
                    Err(e) => tracing::warn!(subject, error = %e, "unreadable lease record"),
                }
            }
            Some(LeaseSubject::Member { replica, .. }) => {
                let record = Envelope::<MemberRecord>::decode(payload).map(|e| e.body);
                let (accepting, stopped) = match &record {
                    Ok(r) => (r.accepting, r.stopped),
                    Err(_) => (false, false),
                };
                let mut book = self.book();
                let now = Instant::now();
                let entry = book.members.entry(replica.to_string()).or_insert(Observed {
                    seq: 0,
                    since: now,
                    accepting,
                    stopped,
                });
                if seq > entry.seq {
                    *entry = Observed {
                        seq,
                        since: now,
                        accepting,
                        stopped,
                    };
                }
            }
            None => {}
        }
    }
}

/// The gate of one owned partition: open while this replica's heartbeat
/// stands in the epoch the lease was (last) confirmed in.
pub(crate) struct LeaseGate {
    group: Arc<Group>,
    partition: u16,
    /// The sequence of our own lease record.
    lease_seq: u64,
    epoch: AtomicU64,
}

impl LeaseGate {
    pub fn new(group: Arc<Group>, partition: u16, lease_seq: u64, epoch: u64) -> Self {
        Self {
            group,
            partition,
            lease_seq,
            epoch: AtomicU64::new(epoch),
        }
    }
}

impl Gate for LeaseGate {
    /// The sequence of our lease record: a partition taken over and taken
    /// back is a new record, and one regained after a pause is checked to
    /// be the same record.
    fn term(&self) -> Option<u64> {
        Some(self.lease_seq)
    }

    fn may_work(&self) -> bool {
        self.group
            .heart
            .may_work(self.epoch.load(Ordering::Acquire))
    }

    fn may_pull(&self) -> bool {
        self.group
            .heart
            .may_pull(self.epoch.load(Ordering::Acquire))
    }

    fn regain(&self) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        Box::pin(async move {
            let subject = self
                .group
                .bus
                .topology()
                .partition_lease(&self.group.name, self.partition);
            loop {
                let epoch = self.group.heart.working().await;
                match self.group.last_seq(&subject).await {
                    Ok(Some(seq)) if seq == self.lease_seq => {
                        self.epoch.store(epoch, Ordering::Release);
                        tracing::info!(group = %self.group.name, partition = self.partition,
                            "heartbeats resumed and the lease is still ours");
                        return true;
                    }
                    Ok(_) => {
                        tracing::warn!(group = %self.group.name, partition = self.partition,
                            "the lease moved on while this replica could not work; letting go");
                        return false;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot read the lease yet");
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                }
            }
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
