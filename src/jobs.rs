//! Work that runs off the request's path, for minutes if it must: a message on the registry's
//! queue (`REGISTRY_QUEUE`, a Cloudflare Queue), consumed by the same worker (`App::run_job`).
//! `waitUntil` ends ~30 s after the client went; a queue consumer runs as long as the copy takes
//! and is retried when it fails.
//!
//! Delivery is at least once: every job is idempotent (a fill that finds its content stored only
//! writes the links, which it writes again with the same bytes).

use serde::{Deserialize, Serialize};

/// One job, as its queue message carries it (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum Job {
    /// Copy the manifest `digest` of the mirror repository `name` (the edge's name for it,
    /// `docker.io/library/nginx`) into storage and link it there; with `tag`, point the tag at it
    /// too. What the manifest references (an index's manifests, an image's config and layers) is
    /// queued as jobs of its own.
    FillManifest {
        name: String,
        digest: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
        /// When the edge learnt that the tag points at the digest (Unix seconds): a fill never
        /// puts a tag back to what an older read saw.
        #[serde(default, skip_serializing_if = "is_zero_u64")]
        seen: u64,
    },
    /// Copy the blob `digest` of the mirror repository `name` into storage, verified, then link it
    /// in the repository.
    FillBlob { name: String, digest: String },
    /// Brings the indexes up to date with the manifest `digest` of `name`, as storage now has it
    /// (pushed, deleted, filled): the catalog lists `name` while it holds a manifest, and the
    /// manifest is among its subject's referrers while it is linked. `subject` is the subject the
    /// edge saw, for a manifest whose bytes storage may no longer hold.
    IndexManifest {
        name: String,
        digest: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
    },
    /// The next step of the indexes' rebuild `run` (its state is in storage).
    RebuildIndex { run: u64 },
    /// A reconcile of the indexes (the Cron Trigger's): a rebuild, unless one is under way.
    ReconcileIndex,
    /// POST the event (its payload, JSON text) to the webhook `webhook`, signed; only while the
    /// webhook is the one the event was queued for (`created`: a webhook deleted and created again
    /// under its name is another, with another URI and secret).
    DeliverWebhook {
        webhook: String,
        event: String,
        #[serde(default)]
        created: u64,
    },
}

/// A job as a queue message carries it: the job, and how many times it was tried before (a
/// retry is the same job sent again, later, with the count one higher, so that the consumer
/// knows the attempt and the delay grows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(flatten)]
    pub job: Job,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tried: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// How many times a job is tried before it is dropped (the next read queues it again).
pub const ATTEMPTS: u32 = 6;

/// What became of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done, or nothing left to do (the upstream no longer has it, the configuration changed).
    Done,
    /// A passing failure (the upstream or storage could not be reached): try again later.
    Retry(String),
    /// A passing failure whose other side said when to try again (seconds).
    RetryIn(String, u32),
    /// A failure another attempt would repeat (content that does not match its digest): dropped.
    Failed(String),
}

/// The wait before a job is tried again after its `attempt`-th attempt (attempts count from 1):
/// `base` seconds (`JOB_RETRY_SECONDS`, 10 by default), doubling, at most 60 times `base` and
/// never over 12 hours (the queue's longest delay).
pub fn retry_delay_seconds(base: u32, attempt: u32) -> u32 {
    base.saturating_mul(1 << attempt.saturating_sub(1).min(6))
        .min(base.saturating_mul(60))
        .min(12 * 3600)
}

/// What the queue consumer does with a message after its job ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Acknowledge it: done, or failed for good (logged).
    Ack,
    /// Send the job again, to run after this many seconds, with its attempt counted.
    Again(u32),
    /// Every attempt failed: send it to the dead-letter queue, then acknowledge it.
    DeadLetter,
}

/// The consumer's decision for a job whose `attempt`-th attempt (from 1) ended with `outcome`;
/// `base` is `JOB_RETRY_SECONDS`.
pub fn next_step(outcome: &Outcome, attempt: u32, base: u32) -> Step {
    let last = attempt >= ATTEMPTS;
    match outcome {
        Outcome::Done | Outcome::Failed(_) => Step::Ack,
        Outcome::Retry(_) | Outcome::RetryIn(..) if last => Step::DeadLetter,
        Outcome::Retry(_) => Step::Again(retry_delay_seconds(base, attempt)),
        Outcome::RetryIn(_, seconds) => Step::Again((*seconds).clamp(1, 12 * 3600)),
    }
}

/// Where jobs are sent: the queue's producer binding on Workers, a list in tests.
#[allow(async_fn_in_trait)]
pub trait Jobs {
    async fn enqueue(&self, jobs: &[Job]) -> Result<(), String>;

    /// Whether there is a queue at all (a deployment may have none: no mirrors, no webhooks, and
    /// the layout walked for the catalog).
    fn available(&self) -> bool {
        true
    }
}

impl<T: Jobs> Jobs for &T {
    async fn enqueue(&self, jobs: &[Job]) -> Result<(), String> {
        (**self).enqueue(jobs).await
    }

    fn available(&self) -> bool {
        (**self).available()
    }
}

/// The jobs sent so far, for tests.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct MemoryJobs(pub std::cell::RefCell<Vec<Job>>);

#[cfg(test)]
impl MemoryJobs {
    pub fn take(&self) -> Vec<Job> {
        std::mem::take(&mut *self.0.borrow_mut())
    }
}

#[cfg(test)]
impl Jobs for MemoryJobs {
    async fn enqueue(&self, jobs: &[Job]) -> Result<(), String> {
        self.0.borrow_mut().extend_from_slice(jobs);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_json_messages() {
        let job = Job::FillManifest {
            name: "docker.io/library/nginx".into(),
            digest: "sha256:ab".into(),
            tag: Some("1".into()),
            seen: 1_700_000_000,
        };
        let text = serde_json::to_string(&job).unwrap();
        assert_eq!(
            text,
            r#"{"job":"fill_manifest","name":"docker.io/library/nginx","digest":"sha256:ab","tag":"1","seen":1700000000}"#
        );
        assert_eq!(serde_json::from_str::<Job>(&text).unwrap(), job);
        let blob: Job =
            serde_json::from_str(r#"{"job":"fill_blob","name":"a/b","digest":"sha256:cd"}"#)
                .unwrap();
        assert!(matches!(blob, Job::FillBlob { .. }));
    }

    #[test]
    fn envelopes_count_the_tries() {
        let job = Job::FillBlob {
            name: "a/b".into(),
            digest: "sha256:cd".into(),
        };
        let first = Envelope {
            job: job.clone(),
            tried: 0,
        };
        assert_eq!(
            serde_json::to_string(&first).unwrap(),
            r#"{"job":"fill_blob","name":"a/b","digest":"sha256:cd"}"#
        );
        let again = Envelope { job, tried: 2 };
        let text = serde_json::to_string(&again).unwrap();
        assert_eq!(
            text,
            r#"{"job":"fill_blob","name":"a/b","digest":"sha256:cd","tried":2}"#
        );
        assert_eq!(serde_json::from_str::<Envelope>(&text).unwrap(), again);
        assert_eq!(
            serde_json::from_str::<Envelope>(
                r#"{"job":"fill_blob","name":"a/b","digest":"sha256:cd"}"#
            )
            .unwrap(),
            first
        );
    }

    #[test]
    fn the_consumer_retries_backs_off_and_gives_up() {
        let retry = Outcome::Retry("503".into());
        assert_eq!(next_step(&Outcome::Done, 1, 10), Step::Ack);
        // A refusal is never retried, nor dead-lettered, even on the last attempt.
        assert_eq!(next_step(&Outcome::Failed("404".into()), 1, 10), Step::Ack);
        assert_eq!(
            next_step(&Outcome::Failed("404".into()), ATTEMPTS, 10),
            Step::Ack
        );
        assert_eq!(next_step(&retry, 1, 10), Step::Again(10));
        assert_eq!(next_step(&retry, 3, 10), Step::Again(40));
        assert_eq!(next_step(&retry, 2, 1), Step::Again(2));
        assert_eq!(
            next_step(&Outcome::RetryIn("429".into(), 30), 1, 10),
            Step::Again(30)
        );
        assert_eq!(
            next_step(&Outcome::RetryIn("429".into(), 0), 1, 10),
            Step::Again(1)
        );
        assert_eq!(next_step(&retry, ATTEMPTS, 10), Step::DeadLetter);
        assert_eq!(
            next_step(&Outcome::RetryIn("429".into(), 30), ATTEMPTS, 10),
            Step::DeadLetter
        );
    }

    #[test]
    fn retries_back_off() {
        let delays: Vec<u32> = (1..=9).map(|a| retry_delay_seconds(10, a)).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 600, 600, 600]);
        assert_eq!(retry_delay_seconds(1, 3), 4);
    }
}
