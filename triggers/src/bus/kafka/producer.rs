//! The crate's Kafka producer: librdkafka's producer, each send awaiting its delivery
//! report, with the reports served by a poller that does not spin.
//!
//! rdkafka 0.39's `FutureProducer` serves delivery reports from a thread that calls
//! `BaseProducer::poll(100 ms)` in a loop. That call waits on librdkafka's queue for the
//! time left *truncated to whole milliseconds*, so in the last fraction of a millisecond
//! of every 100 ms it polls with a zero timeout in a tight loop: about 0.9% of a core
//! per producer, busy or idle (`reconciler serve` idle on the bench's config: three such
//! threads, 90 ms of CPU each per 10 s; under load they were a sixth of the service's
//! CPU, `perf record`, BENCHMARKS.md).
//!
//! Here one thread per producer serves every report that is ready with zero-timeout
//! polls, then sleeps [`BUSY_TICK`] while messages are in flight (a report is served at
//! most that long after it arrives) or parks up to [`IDLE_TICK`] when none are (a send
//! unparks it). Dropping the last clone stops and joins the thread; the producer then
//! purges what is still queued, as librdkafka's producer does on drop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::client::{Client, ClientContext};
use rdkafka::config::{ClientConfig, FromClientConfigAndContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, ToBytes};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use tokio::sync::oneshot;

/// While messages are in flight, the poller looks for their reports this often.
pub const BUSY_TICK: Duration = Duration::from_millis(1);
/// With nothing in flight, the poller still serves librdkafka's other events (errors,
/// logs) this often.
pub const IDLE_TICK: Duration = Duration::from_millis(100);
/// A full local queue is retried this often until the send's queue timeout.
const QUEUE_FULL_RETRY: Duration = Duration::from_millis(20);

/// Where a message was written: partition and offset.
pub type Delivered = (i32, i64);

/// Hands each delivery report to the send waiting for it.
pub struct Delivery;

impl ClientContext for Delivery {}

impl ProducerContext for Delivery {
    type DeliveryOpaque = Box<oneshot::Sender<Result<Delivered, KafkaError>>>;

    fn delivery(&self, result: &DeliveryResult<'_>, waiting: Self::DeliveryOpaque) {
        let outcome = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.clone()),
        };
        // The send may have been dropped (its caller gave up): nothing to tell.
        let _ = waiting.send(outcome);
    }
}

/// One message to send: the topic, and optionally partition, key, payload and headers.
pub struct Record<'a> {
    pub topic: &'a str,
    pub partition: Option<i32>,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    pub headers: Option<rdkafka::message::OwnedHeaders>,
}

impl<'a> Record<'a> {
    pub fn to(topic: &'a str) -> Record<'a> {
        Record { topic, partition: None, key: None, payload: None, headers: None }
    }

    pub fn key(mut self, key: &'a (impl ToBytes + ?Sized)) -> Record<'a> {
        self.key = Some(key.to_bytes());
        self
    }

    pub fn payload(mut self, payload: &'a (impl ToBytes + ?Sized)) -> Record<'a> {
        self.payload = Some(payload.to_bytes());
        self
    }

    pub fn partition(mut self, partition: i32) -> Record<'a> {
        self.partition = Some(partition);
        self
    }

    pub fn headers(mut self, headers: rdkafka::message::OwnedHeaders) -> Record<'a> {
        self.headers = Some(headers);
        self
    }
}

/// The thread serving a producer's delivery reports; stopped and joined on drop.
struct Poller {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Poller {
    fn unpark(&self) {
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// A Kafka producer; clones share it.
#[derive(Clone)]
pub struct Producer {
    // Dropped first: the poller stops before the last reference to the producer goes.
    poller: Arc<Poller>,
    base: Arc<BaseProducer<Delivery>>,
}

impl Producer {
    /// A producer with `config`, and its poller thread.
    pub fn new(config: &ClientConfig) -> Result<Producer, KafkaError> {
        let base = Arc::new(BaseProducer::from_config_and_context(config, Delivery)?);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("kafka-delivery".into())
            .spawn({
                let (base, stop) = (base.clone(), stop.clone());
                move || serve(&base, &stop)
            })
            .map_err(|e| KafkaError::ClientCreation(format!("starting the delivery poller: {e}")))?;
        Ok(Producer { poller: Arc::new(Poller { stop, thread: Some(thread) }), base })
    }

    /// The client, for metadata.
    pub fn client(&self) -> &Client<Delivery> {
        self.base.client()
    }

    /// Queues `record` (retrying a full local queue for up to `queue_timeout`) and waits
    /// for the broker's acknowledgement: where it was written, or why not.
    pub async fn send(&self, record: Record<'_>, queue_timeout: Duration) -> Result<Delivered, KafkaError> {
        let (tx, rx) = oneshot::channel();
        let mut base = BaseRecord::with_opaque_to(record.topic, Box::new(tx));
        base.partition = record.partition;
        base.key = record.key;
        base.payload = record.payload;
        base.headers = record.headers;
        let started = Instant::now();
        loop {
            match self.base.send(base) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if started.elapsed() < queue_timeout =>
                {
                    base = back;
                    self.poller.unpark();
                    tokio::time::sleep(QUEUE_FULL_RETRY).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
        self.poller.unpark();
        // The report comes from the poller, or from the purge when the producer goes;
        // a dropped sender means neither will.
        rx.await.unwrap_or(Err(KafkaError::Canceled))
    }
}

/// The poller's loop: serve what is ready, then wait a tick.
fn serve(base: &BaseProducer<Delivery>, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        // A zero-timeout poll serves at most one event (a report may hold many
        // messages); keep going while they bring the count in flight down.
        loop {
            let before = base.in_flight_count();
            base.poll(Duration::ZERO);
            if before == 0 || base.in_flight_count() >= before {
                break;
            }
        }
        if base.in_flight_count() > 0 {
            std::thread::sleep(BUSY_TICK);
        } else {
            std::thread::park_timeout(IDLE_TICK);
        }
    }
}
