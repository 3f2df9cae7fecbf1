//! Names of everything on the bus. No stage formats a subject by hand.

/// The JetStream streams of one Waiter deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// Webhooks accepted by ingest: inbound messages (partitioned by
    /// customer and number), status callbacks and refused requests.
    Ingest,
    /// Everything that happens to one conversation, partitioned by
    /// conversation: customer messages, staff replies, order updates.
    Conversation,
    /// Commands for the order state machine, partitioned by order.
    Order,
    /// Messages to send through the Twilio Messages API, partitioned by
    /// conversation so replies leave in the order they were decided.
    Outbound,
    /// Events for dashboards, one subject per restaurant and event type.
    Events,
    /// Messages that exhausted their attempts, with the reason.
    DeadLetter,
    /// The tenant directory: the last entry per Twilio account.
    Directory,
    /// Partition leases and replica heartbeats of every consumer group:
    /// the last record per subject.
    Leases,
    /// Order events to deliver to the restaurants' webhook endpoints, one
    /// message per event and endpoint, partitioned by order.
    Webhooks,
}

impl StreamKind {
    pub const ALL: [StreamKind; 9] = [
        StreamKind::Ingest,
        StreamKind::Conversation,
        StreamKind::Order,
        StreamKind::Outbound,
        StreamKind::Events,
        StreamKind::DeadLetter,
        StreamKind::Directory,
        StreamKind::Leases,
        StreamKind::Webhooks,
    ];

    fn token(self) -> &'static str {
        match self {
            StreamKind::Ingest => "ingest",
            StreamKind::Conversation => "conv",
            StreamKind::Order => "order",
            StreamKind::Outbound => "outbound",
            StreamKind::Events => "events",
            StreamKind::DeadLetter => "dlq",
            StreamKind::Directory => "tenants",
            StreamKind::Leases => "lease",
            StreamKind::Webhooks => "webhook",
        }
    }

    /// The stream's name in environment variables (`NATS_STREAM_<TOKEN>_…`).
    pub fn env_token(self) -> String {
        self.token().to_ascii_uppercase()
    }

    /// Streams whose main subject is split into partitions.
    pub fn is_partitioned(self) -> bool {
        matches!(
            self,
            StreamKind::Ingest
                | StreamKind::Conversation
                | StreamKind::Order
                | StreamKind::Outbound
                | StreamKind::Webhooks
        )
    }
}

/// A subject of the lease stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseSubject<'s> {
    Partition { group: &'s str, partition: u16 },
    Member { group: &'s str, replica: &'s str },
}

/// Stream, subject, consumer and bucket names for one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    namespace: String,
    partitions: u16,
}

impl Topology {
    pub fn new(namespace: &str, partitions: u16) -> Self {
        Self {
            namespace: namespace.to_string(),
            partitions: partitions.max(1),
        }
    }

    /// A namespace is a lowercase identifier: it becomes a subject token and,
    /// upper-cased, the prefix of every stream name.
    pub fn validate_namespace(namespace: &str) -> Result<(), String> {
        let ok = !namespace.is_empty()
            && namespace.len() <= 40
            && namespace.starts_with(|c: char| c.is_ascii_lowercase())
            && namespace
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(())
        } else {
            Err(format!(
                "WAITER_NAMESPACE={namespace:?} must be a lowercase identifier (a-z, 0-9, _; at most 40)"
            ))
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn partitions(&self) -> u16 {
        self.partitions
    }

    pub fn stream_name(&self, kind: StreamKind) -> String {
        format!(
            "{}_{}",
            self.namespace.to_ascii_uppercase(),
            kind.token().to_ascii_uppercase()
        )
    }

    /// The subjects a stream captures.
    pub fn stream_subjects(&self, kind: StreamKind) -> String {
        format!("{}.{}.>", self.namespace, kind.token())
    }

    /// Inbound customer messages, partitioned by (To, From).
    pub fn inbound_message(&self, partition: u16) -> String {
        format!("{}.ingest.message.{partition}", self.namespace)
    }

    /// Status callbacks for messages we sent.
    pub fn status_callback(&self) -> String {
        format!("{}.ingest.status", self.namespace)
    }

    /// Counts and samples of the webhooks ingest refused (bad signature,
    /// unknown account, malformed) or found duplicate, for the router.
    pub fn refused_webhooks(&self) -> String {
        format!("{}.ingest.refused", self.namespace)
    }

    pub fn conversation(&self, partition: u16) -> String {
        format!("{}.conv.{partition}", self.namespace)
    }

    pub fn order_command(&self, partition: u16) -> String {
        format!("{}.order.{partition}", self.namespace)
    }

    pub fn outbound(&self, partition: u16) -> String {
        format!("{}.outbound.{partition}", self.namespace)
    }

    /// Order events for webhook endpoints, partitioned by order.
    pub fn webhook(&self, partition: u16) -> String {
        format!("{}.webhook.{partition}", self.namespace)
    }

    /// One dashboard event: `<ns>.events.<restaurant>.<type>`, where the type
    /// itself has a dot (`message.received`).
    pub fn event(&self, restaurant_id: &uuid::Uuid, event_type: &str) -> String {
        format!("{}.events.{restaurant_id}.{event_type}", self.namespace)
    }

    /// Every event of one restaurant.
    pub fn events_of(&self, restaurant_id: &uuid::Uuid) -> String {
        format!("{}.events.{restaurant_id}.>", self.namespace)
    }

    /// Dead letters of one stage.
    pub fn dead_letter(&self, stage: &str) -> String {
        format!("{}.dlq.{stage}", self.namespace)
    }

    /// The partitioned subject of a stream, for one partition.
    pub fn partition_subject(&self, kind: StreamKind, partition: u16) -> Option<String> {
        match kind {
            StreamKind::Ingest => Some(self.inbound_message(partition)),
            StreamKind::Conversation => Some(self.conversation(partition)),
            StreamKind::Order => Some(self.order_command(partition)),
            StreamKind::Outbound => Some(self.outbound(partition)),
            StreamKind::Webhooks => Some(self.webhook(partition)),
            StreamKind::Events
            | StreamKind::DeadLetter
            | StreamKind::Directory
            | StreamKind::Leases => None,
        }
    }

    /// The durable consumer a stage uses for one partition.
    pub fn partition_consumer(&self, stage: &str, partition: u16) -> String {
        format!("{stage}-p{partition}")
    }

    /// The directory entry of one Twilio account.
    pub fn directory_entry(&self, account_sid: &str) -> String {
        format!("{}.tenants.{account_sid}", self.namespace)
    }

    /// Everything the replicas of one consumer group (a stage's partition
    /// consumers) write: their leases and their heartbeats.
    pub fn lease_group(&self, group: &str) -> String {
        format!("{}.lease.{group}.>", self.namespace)
    }

    /// Who owns one partition of a group.
    pub fn partition_lease(&self, group: &str, partition: u16) -> String {
        format!("{}.lease.{group}.p.{partition}", self.namespace)
    }

    /// One replica's heartbeat (and `just ps` record) in a group.
    pub fn group_member(&self, group: &str, replica: &str) -> String {
        format!("{}.lease.{group}.m.{replica}", self.namespace)
    }

    /// What a subject of [`Topology::lease_group`] is about.
    pub fn lease_subject<'s>(&self, subject: &'s str) -> Option<LeaseSubject<'s>> {
        let rest = subject
            .strip_prefix(self.namespace.as_str())?
            .strip_prefix(".lease.")?;
        let mut parts = rest.splitn(3, '.');
        let group = parts.next()?;
        match (parts.next()?, parts.next()?) {
            ("p", n) => Some(LeaseSubject::Partition {
                group,
                partition: n.parse().ok()?,
            }),
            ("m", replica) => Some(LeaseSubject::Member { group, replica }),
            _ => None,
        }
    }

    /// Which stream holds a subject, if any.
    pub fn stream_of_subject(&self, subject: &str) -> Option<StreamKind> {
        let rest = subject.strip_prefix(&self.namespace)?.strip_prefix('.')?;
        let token = rest.split('.').next()?;
        StreamKind::ALL.into_iter().find(|k| k.token() == token)
    }

    /// The partition number at the end of a partitioned subject.
    pub fn partition_from_subject(subject: &str) -> Option<u16> {
        subject.rsplit('.').next()?.parse().ok()
    }
}

impl Topology {
    /// The partition of a conversation: (restaurant, customer address).
    pub fn conversation_partition(&self, restaurant_id: &uuid::Uuid, customer: &str) -> u16 {
        crate::partition_of(&[&restaurant_id.to_string(), customer], self.partitions)
    }

    /// The partition an inbound webhook goes to before its restaurant is
    /// known: (To, From) identifies the conversation just as well.
    pub fn inbound_partition(&self, to: &str, from: &str) -> u16 {
        crate::partition_of(&[to, from], self.partitions)
    }

    pub fn order_partition(&self, order_id: &uuid::Uuid) -> u16 {
        crate::partition_of(&[&order_id.to_string()], self.partitions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_namespace() {
        let t = Topology::new("t42", 8);
        assert_eq!(t.stream_name(StreamKind::Ingest), "T42_INGEST");
        assert_eq!(t.stream_subjects(StreamKind::Conversation), "t42.conv.>");
        assert_eq!(t.inbound_message(3), "t42.ingest.message.3");
        assert_eq!(t.partition_consumer("router", 3), "router-p3");
        assert_eq!(
            t.stream_of_subject("t42.outbound.7"),
            Some(StreamKind::Outbound)
        );
        assert_eq!(t.stream_of_subject("other.outbound.7"), None);
        assert_eq!(Topology::partition_from_subject("t42.outbound.7"), Some(7));
        assert_eq!(t.stream_name(StreamKind::Webhooks), "T42_WEBHOOK");
        assert_eq!(t.webhook(2), "t42.webhook.2");
        assert_eq!(
            t.stream_of_subject("t42.webhook.2"),
            Some(StreamKind::Webhooks)
        );
        let r = uuid::Uuid::nil();
        assert_eq!(
            t.event(&r, "message.received"),
            format!("t42.events.{r}.message.received")
        );
    }

    #[test]
    fn lease_subjects_round_trip() {
        let t = Topology::new("t42", 8);
        assert_eq!(t.stream_name(StreamKind::Leases), "T42_LEASE");
        let lease = t.partition_lease("conversation", 5);
        assert_eq!(lease, "t42.lease.conversation.p.5");
        assert_eq!(
            t.lease_subject(&lease),
            Some(LeaseSubject::Partition {
                group: "conversation",
                partition: 5
            })
        );
        let member = t.group_member("conversation", "conversation-2");
        assert_eq!(
            t.lease_subject(&member),
            Some(LeaseSubject::Member {
                group: "conversation",
                replica: "conversation-2"
            })
        );
        assert_eq!(t.lease_subject("t42.lease.conversation.x.1"), None);
        assert_eq!(t.lease_subject("t42.conv.1"), None);
        assert_eq!(t.stream_of_subject(&member), Some(StreamKind::Leases));
    }

    #[test]
    fn namespaces_are_validated() {
        assert!(Topology::validate_namespace("waiter").is_ok());
        assert!(Topology::validate_namespace("t_1a").is_ok());
        for bad in ["", "Waiter", "1abc", "a.b", "a-b", "a b"] {
            assert!(Topology::validate_namespace(bad).is_err(), "{bad}");
        }
    }
}
