use std::time::Duration;

use async_nats::{jetstream, HeaderMap};

use crate::{
    config::BusConfig,
    envelope::{Envelope, Payload, KIND_HEADER, TRACE_HEADER},
    error::BusError,
    streams,
    topology::{StreamKind, Topology},
    worker::WorkerConfig,
};

/// One NATS connection per process, shared by every task of a stage.
#[derive(Clone)]
pub struct Bus {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    topology: Topology,
    replicas: usize,
    publish_timeout: Duration,
    ack_wait: Duration,
    stream_limits: std::collections::HashMap<StreamKind, streams::StreamLimits>,
    worker: WorkerConfig,
}

/// An envelope encoded earlier, with its headers' values (the outbox).
#[derive(Debug, Clone)]
pub struct EncodedMessage {
    pub subject: String,
    pub msg_id: String,
    pub trace_id: String,
    pub kind: String,
    pub payload: Vec<u8>,
}

impl EncodedMessage {
    /// `envelope` encoded for `subject`, to publish in a batch.
    pub fn of<T: Payload>(subject: String, envelope: &Envelope<T>) -> Result<Self, BusError> {
        Ok(Self {
            subject,
            payload: envelope.encode()?,
            msg_id: envelope.id.clone(),
            trace_id: envelope.trace_id.clone(),
            kind: T::KIND.to_string(),
        })
    }
}

/// Where JetStream stored a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub stream_sequence: u64,
    /// JetStream had already stored an envelope with this id (within the
    /// stream's duplicate window) and did not store it again.
    pub duplicate: bool,
}

impl Bus {
    /// Connects once, with the configured credentials and TLS; the client
    /// reconnects by itself if the server restarts. Errors name the URL
    /// without its password.
    pub async fn connect(config: &BusConfig, client_name: &str) -> Result<Self, BusError> {
        // One URL, or the servers of a cluster separated by commas.
        let servers = config
            .url
            .split(',')
            .map(|one| one.trim().parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BusError::Setup {
                what: format!("NATS_URL {}", config.display_url()),
                reason: e.to_string(),
            })?;
        let options = config
            .connect_options(client_name)
            .await
            .map_err(|reason| BusError::Setup {
                what: "NATS credentials".into(),
                reason,
            })?;
        // The server's last complaint (a wrong password, a permissions
        // violation), for the log and for a readable start-up error.
        let last_error = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
        let noted = last_error.clone();
        let name = client_name.to_string();
        let client = options
            .event_callback(move |event| {
                let (noted, name) = (noted.clone(), name.clone());
                async move {
                    match &event {
                        async_nats::Event::ServerError(_) | async_nats::Event::ClientError(_) => {
                            tracing::error!(client = %name, %event, "NATS");
                            *noted.lock().expect("nats error slot") = Some(event.to_string());
                        }
                        async_nats::Event::Connected => {
                            tracing::info!(client = %name, "NATS connected")
                        }
                        other => tracing::warn!(client = %name, event = %other, "NATS"),
                    }
                }
            })
            .connection_timeout(Duration::from_secs(5))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connect(servers)
            .await
            .map_err(|source| BusError::Connect {
                url: config.display_url(),
                source,
            })?;
        // A first round trip, so a wrong URL fails here with a readable
        // error rather than as a hang in the first publish.
        tokio::time::timeout(Duration::from_secs(10), client.flush())
            .await
            .map_err(|_| BusError::Setup {
                what: "connection".into(),
                reason: match last_error.lock().expect("nats error slot").take() {
                    Some(said) => format!(
                        "NATS at {} refused the connection ({said}): check NATS_USER/NATS_PASSWORD, NATS_TOKEN, NATS_NKEY_SEED or NATS_CREDS_FILE",
                        config.display_url()
                    ),
                    None => format!("no answer from NATS at {} within 10s", config.display_url()),
                },
            })?
            .map_err(|e| BusError::Setup {
                what: "connection".into(),
                reason: e.to_string(),
            })?;
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(config.publish_timeout)
            .max_ack_inflight(8192)
            .backpressure_on_inflight(true)
            .build(client.clone());
        Ok(Self {
            client,
            jetstream,
            topology: config.topology(),
            replicas: config.replicas,
            publish_timeout: config.publish_timeout,
            ack_wait: config.ack_wait,
            stream_limits: config.stream_limits.clone(),
            worker: config.worker.clone(),
        })
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The ack wait of the consumers this process creates.
    pub fn ack_wait(&self) -> Duration {
        self.ack_wait
    }

    /// How this process's workers pull, retry and hold partitions.
    pub fn worker_config(&self) -> &WorkerConfig {
        &self.worker
    }

    /// Whether the connection is up (for `/health`).
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    /// Creates the given streams if they do not exist yet (idempotent).
    pub async fn ensure_streams(&self, kinds: &[StreamKind]) -> Result<(), BusError> {
        for &kind in kinds {
            let limits = self
                .stream_limits
                .get(&kind)
                .copied()
                .unwrap_or_else(|| streams::StreamLimits::default_for(kind));
            streams::ensure_stream(&self.jetstream, &self.topology, kind, self.replicas, limits)
                .await?;
        }
        Ok(())
    }

    /// Publishes an envelope and waits for JetStream to store it. The
    /// envelope id is the `Nats-Msg-Id`, so a retry of the same envelope is
    /// stored once.
    pub async fn publish<T: Payload>(
        &self,
        subject: String,
        envelope: &Envelope<T>,
    ) -> Result<Published, BusError> {
        let payload = envelope.encode()?;
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, envelope.id.as_str());
        headers.insert(TRACE_HEADER, envelope.trace_id.as_str());
        headers.insert(KIND_HEADER, T::KIND);
        self.send(subject, headers, payload).await
    }

    /// Publishes raw bytes with the given headers and waits for the
    /// PubAck. A `Nats-Expected-Last-Subject-Sequence` header that no
    /// longer holds comes back as [`BusError::Conflict`].
    pub async fn publish_with_headers(
        &self,
        subject: String,
        headers: HeaderMap,
        payload: Vec<u8>,
    ) -> Result<Published, BusError> {
        self.send(subject, headers, payload).await
    }

    async fn send(
        &self,
        subject: String,
        headers: HeaderMap,
        payload: Vec<u8>,
    ) -> Result<Published, BusError> {
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(self.publish_timeout, async {
            let ack = self
                .jetstream
                .publish_with_headers(subject.clone(), headers, payload.into())
                .await
                .map_err(|e| BusError::Publish {
                    subject: subject.clone(),
                    reason: e.to_string(),
                })?;
            ack.await.map_err(|e| match e.kind() {
                jetstream::context::PublishErrorKind::WrongLastSequence => BusError::Conflict {
                    subject: subject.clone(),
                },
                _ => BusError::Publish {
                    subject: subject.clone(),
                    reason: e.to_string(),
                },
            })
        })
        .await;
        metrics::histogram!("waiter_bus_publish_seconds").record(started.elapsed().as_secs_f64());
        match outcome {
            Ok(Ok(ack)) => {
                if ack.duplicate {
                    metrics::counter!("waiter_bus_publish_duplicates_total").increment(1);
                }
                Ok(Published {
                    stream_sequence: ack.sequence,
                    duplicate: ack.duplicate,
                })
            }
            Ok(Err(e)) => {
                metrics::counter!("waiter_bus_publish_errors_total").increment(1);
                Err(e)
            }
            Err(_) => {
                metrics::counter!("waiter_bus_publish_errors_total").increment(1);
                Err(BusError::PublishTimeout { subject })
            }
        }
    }

    /// Publishes an envelope that was encoded earlier (the outbox).
    pub async fn publish_encoded(
        &self,
        subject: String,
        msg_id: &str,
        trace_id: &str,
        kind: &str,
        payload: Vec<u8>,
    ) -> Result<Published, BusError> {
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
        headers.insert(TRACE_HEADER, trace_id);
        headers.insert(KIND_HEADER, kind);
        self.send(subject, headers, payload).await
    }

    /// Publishes several encoded envelopes in order without waiting for each
    /// PubAck before sending the next (one connection keeps their order),
    /// then waits for all of them.
    pub async fn publish_encoded_batch(
        &self,
        batch: Vec<EncodedMessage>,
    ) -> Result<Vec<Published>, BusError> {
        let mut pending = Vec::with_capacity(batch.len());
        for m in batch {
            let mut headers = HeaderMap::new();
            headers.insert(async_nats::header::NATS_MESSAGE_ID, m.msg_id.as_str());
            headers.insert(TRACE_HEADER, m.trace_id.as_str());
            headers.insert(KIND_HEADER, m.kind.as_str());
            let ack = self
                .jetstream
                .publish_with_headers(m.subject.clone(), headers, m.payload.into())
                .await
                .map_err(|e| BusError::Publish {
                    subject: m.subject.clone(),
                    reason: e.to_string(),
                })?;
            pending.push((m.subject, ack));
        }
        let mut published = Vec::with_capacity(pending.len());
        for (subject, ack) in pending {
            let ack = tokio::time::timeout(self.publish_timeout, ack)
                .await
                .map_err(|_| BusError::PublishTimeout {
                    subject: subject.clone(),
                })?
                .map_err(|e| BusError::Publish {
                    subject,
                    reason: e.to_string(),
                })?;
            published.push(Published {
                stream_sequence: ack.sequence,
                duplicate: ack.duplicate,
            });
        }
        Ok(published)
    }

    /// Deletes every stream of this namespace. For tests and
    /// throw-away benchmark namespaces only.
    pub async fn delete_namespace(&self) -> Result<(), BusError> {
        for kind in StreamKind::ALL {
            let _ = self
                .jetstream
                .delete_stream(self.topology.stream_name(kind))
                .await;
        }
        Ok(())
    }
}
