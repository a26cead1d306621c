//! The prefetching loader: a producer thread assembles batches in order on a worker pool and
//! keeps up to `queue_depth` ready batches in a bounded channel.
//!
//! A batch is a pure function of (source, recipe, seed, epoch, position), so thread timing never
//! changes the data, and [`Loader::resume`] from a stored [`Cursor`] reproduces the remaining
//! batches exactly. Changing the stage or the cursor restarts the producer: batches prefetched
//! under the old settings are discarded, so the change takes effect with the very next batch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use rayon::{ThreadPool, ThreadPoolBuilder};

use super::batch::{assemble, Batch, Cursor, Recipe, SkippedImage, Slot};
use super::error::{DataError, Result};
use super::mix::MixConfig;
use super::source::Source;
use super::transform::{
    AugmentOn, AugmentSettings, EvalTransform, Normalization, Policy, Preprocessing, TrainTransform,
};

/// RandAugment layers of the official recipe.
pub const RANDAUGMENT_LAYERS: usize = 2;

/// The settings that progressive learning changes at a stage boundary.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stage {
    /// Training image side in pixels.
    pub image_size: usize,
    /// RandAugment magnitude (float, used directly in the level formulas).
    pub magnitude: f32,
    /// Mixup alpha (0 = off).
    pub mixup: f32,
    /// CutMix alpha (0 = off).
    pub cutmix: f32,
}

/// Which part of every batch a loader delivers. A batch is `groups` equal consecutive parts
/// (the shares of data-parallel replicas, each mixed and repaired on its own); the loader
/// delivers parts `first..first + len`. Each host of a multi-host run reads its replicas' parts,
/// and together the hosts read exactly the batches one host with all replicas would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub groups: usize,
    pub first: usize,
    pub len: usize,
}

impl Shard {
    /// The whole batch as one part.
    pub const WHOLE: Shard = Shard {
        groups: 1,
        first: 0,
        len: 1,
    };

    /// All `groups` parts (one host with every replica).
    pub fn all(groups: usize) -> Shard {
        Shard {
            groups,
            first: 0,
            len: groups,
        }
    }

    fn validate(&self, batch: usize) -> Result<()> {
        if self.groups == 0 || self.len == 0 || self.first + self.len > self.groups {
            return Err(DataError::Config(format!(
                "shard of parts {}..{} of {} is empty or out of range",
                self.first,
                self.first + self.len,
                self.groups
            )));
        }
        if !batch.is_multiple_of(self.groups) {
            return Err(DataError::Config(format!(
                "a batch of {batch} does not split into {} equal parts",
                self.groups
            )));
        }
        Ok(())
    }

    /// The examples of a full `batch` this shard delivers, as positions in the batch.
    fn range(&self, batch: usize) -> std::ops::Range<usize> {
        let part = batch / self.groups;
        self.first * part..(self.first + self.len) * part
    }
}

impl Default for Shard {
    fn default() -> Shard {
        Shard::WHOLE
    }
}

/// Settings of a training loader.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoaderConfig {
    /// Examples per batch (over all shards: the global batch).
    pub batch: usize,
    /// The part of each batch this loader delivers; batches are then always full
    /// (`drop_last` must be set unless the shard is [`Shard::WHOLE`]).
    pub shard: Shard,
    /// Training image side of the first stage.
    pub image_size: usize,
    /// RandAugment magnitude of the first stage.
    pub magnitude: f32,
    /// The crop and resize rules (the model's official pipeline).
    pub preprocessing: Preprocessing,
    /// The augmentation policy: RandAugment with [`RANDAUGMENT_LAYERS`] or AutoAugment v0 in the
    /// official recipes, `RandAugment { layers: 0 }` for none.
    pub policy: Policy,
    /// The model's input normalisation.
    pub normalization: Normalization,
    /// Mixup alpha of the first stage.
    pub mixup: f32,
    /// CutMix alpha of the first stage.
    pub cutmix: f32,
    /// Seed of every random decision (shuffle, crops, augmentation, mixing).
    pub seed: u64,
    /// Decoding / augmentation threads.
    pub workers: usize,
    /// Ready batches kept ahead of the consumer.
    pub queue_depth: usize,
    /// Drop the incomplete last batch of each epoch (keeps every batch the compiled size).
    pub drop_last: bool,
    /// Visit examples in a fresh seeded order each epoch.
    pub shuffle: bool,
    /// Crop-area floor and RandAugment pixel constants, fixed for the loader's life; the official
    /// values suit 224+ px images, small images need them scaled down.
    pub settings: AugmentSettings,
    /// Whether batches hold normalised, augmented and mixed images ([`AugmentOn::Host`]) or
    /// `u8` images with the drawn augmentation and mixing for the step to apply
    /// ([`AugmentOn::Device`], RandAugment only).
    pub augment_on: AugmentOn,
}

impl LoaderConfig {
    /// The train transform of the first stage.
    fn frame(&self) -> TrainTransform {
        TrainTransform {
            image_size: self.image_size,
            preprocessing: self.preprocessing,
            policy: self.policy,
            magnitude: self.magnitude,
            settings: self.settings,
            normalization: self.normalization,
        }
    }

    /// The stage part of this configuration.
    pub fn stage(&self) -> Stage {
        Stage {
            image_size: self.image_size,
            magnitude: self.magnitude,
            mixup: self.mixup,
            cutmix: self.cutmix,
        }
    }
}

/// Settings of an evaluation loader: one pass in source order, eval transform, no mixing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalConfig {
    pub batch: usize,
    pub image_size: usize,
    pub workers: usize,
    pub queue_depth: usize,
    /// The crop and resize rules (the model's official pipeline).
    pub preprocessing: Preprocessing,
    /// The model's input normalisation.
    pub normalization: Normalization,
    /// Only `eval_crop_padding` matters for evaluation.
    pub settings: AugmentSettings,
}

/// Unreadable examples met during one epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochReport {
    pub epoch: u64,
    /// Skipped examples in the batches this loader delivered for the epoch.
    pub skipped: Vec<SkippedImage>,
}

/// How examples are grouped into batches and epochs (fixed for a loader's life).
#[derive(Clone, Copy, Debug)]
struct Layout {
    batch: usize,
    shard: Shard,
    shuffle: bool,
    seed: u64,
    queue_depth: usize,
    /// Number of epochs to produce; `None` = endless (training).
    epochs: Option<u64>,
    /// Examples delivered per epoch.
    epoch_examples: usize,
}

/// Iterator of batches fed by background threads. Training loaders run forever (crossing epochs);
/// evaluation loaders end after one pass.
pub struct Loader {
    source: Arc<dyn Source>,
    pool: Arc<ThreadPool>,
    layout: Layout,
    recipe: Recipe,
    cursor: Cursor,
    producer: Producer,
    epoch_skips: Vec<SkippedImage>,
    last_report: Option<EpochReport>,
    finished: bool,
}

impl Loader {
    /// A training loader starting at epoch 0, position 0.
    pub fn new(source: Arc<dyn Source>, config: LoaderConfig) -> Result<Self> {
        config.settings.validate()?;
        config.normalization.validate()?;
        config.shard.validate(config.batch)?;
        if config.shard != Shard::WHOLE && !config.drop_last {
            return Err(DataError::Config(
                "a sharded loader needs drop_last: every batch must split into equal parts".into(),
            ));
        }
        if config.augment_on == AugmentOn::Device {
            config.frame().check_device()?;
        }
        let recipe = train_recipe(config.stage(), config.frame(), config.augment_on)?;
        let layout = layout(
            source.as_ref(),
            config.batch,
            config.shard,
            config.drop_last,
            config.shuffle,
            config.seed,
            config.queue_depth,
            None,
        )?;
        Self::start(source, layout, recipe, config.workers)
    }

    /// An evaluation loader over the whole source in its own order.
    pub fn eval(source: Arc<dyn Source>, config: EvalConfig) -> Result<Self> {
        check_size(config.image_size)?;
        config.settings.validate()?;
        config.normalization.validate()?;
        let recipe = Recipe::Eval(EvalTransform {
            image_size: config.image_size,
            preprocessing: config.preprocessing,
            crop_padding: config.settings.eval_crop_padding,
            normalization: config.normalization,
        });
        let layout = layout(
            source.as_ref(),
            config.batch,
            Shard::WHOLE,
            false,
            false,
            0,
            config.queue_depth,
            Some(1),
        )?;
        Self::start(source, layout, recipe, config.workers)
    }

    fn start(
        source: Arc<dyn Source>,
        layout: Layout,
        recipe: Recipe,
        workers: usize,
    ) -> Result<Self> {
        if workers == 0 {
            return Err(DataError::Config("workers must be at least 1".into()));
        }
        let pool = ThreadPoolBuilder::new()
            .num_threads(workers)
            .thread_name(|i| format!("data-worker-{i}"))
            .build()
            .map_err(|e| DataError::Config(format!("cannot start {workers} data workers: {e}")))?;
        let pool = Arc::new(pool);
        let cursor = Cursor::default();
        let producer = Producer::spawn(&source, &pool, layout, recipe, cursor)?;
        Ok(Loader {
            source,
            pool,
            layout,
            recipe,
            cursor,
            producer,
            epoch_skips: Vec::new(),
            last_report: None,
            finished: false,
        })
    }

    /// Switches to a new progressive-learning stage; the next batch returned uses it. Fails on an
    /// evaluation loader or an invalid stage.
    pub fn set_stage(&mut self, stage: Stage) -> Result<()> {
        let Recipe::Train { transform, on, .. } = self.recipe else {
            return Err(DataError::Config(
                "an evaluation loader has no training stage".into(),
            ));
        };
        let recipe = train_recipe(stage, transform, on)?;
        if recipe != self.recipe {
            self.recipe = recipe;
            self.restart()?;
        }
        Ok(())
    }

    /// The current stage (`None` for an evaluation loader).
    pub fn stage(&self) -> Option<Stage> {
        match self.recipe {
            Recipe::Train { transform, mix, .. } => Some(Stage {
                image_size: transform.image_size,
                magnitude: transform.magnitude,
                mixup: mix.mixup,
                cutmix: mix.cutmix,
            }),
            Recipe::Eval(_) => None,
        }
    }

    /// Where the next batch starts. Save it with the checkpoint of the step that consumed the
    /// last batch.
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// Continues from `cursor`: the following batches are exactly those an uninterrupted loader
    /// with the same configuration and stage would have produced from there.
    pub fn resume(&mut self, cursor: Cursor) -> Result<()> {
        let beyond_last_epoch = self.layout.epochs.is_some_and(|n| cursor.epoch >= n);
        if beyond_last_epoch || cursor.position >= self.layout.epoch_examples {
            return Err(DataError::Config(format!(
                "cursor (epoch {}, position {}) is outside the data: an epoch has {} examples{}",
                cursor.epoch,
                cursor.position,
                self.layout.epoch_examples,
                if self.layout.epochs.is_some() {
                    " and evaluation has one epoch"
                } else {
                    ""
                }
            )));
        }
        self.cursor = cursor;
        self.epoch_skips.clear();
        self.restart()
    }

    /// Ends each epoch after at most `examples` examples (rounded down to whole batches), from
    /// the cursor's epoch on. The hosts of a run that split the data by file hold different
    /// numbers of examples; each caps its epoch at the smallest host's, so that every host's
    /// epoch has the same number of steps. Fails when not one batch would remain.
    pub fn cap_epoch(&mut self, examples: usize) -> Result<()> {
        let capped =
            (examples / self.layout.batch * self.layout.batch).min(self.layout.epoch_examples);
        if capped == 0 {
            return Err(DataError::Config(format!(
                "an epoch capped at {examples} examples holds no batch of {}",
                self.layout.batch
            )));
        }
        if capped != self.layout.epoch_examples {
            self.layout.epoch_examples = capped;
            if self.cursor.position >= capped {
                return Err(DataError::Config(format!(
                    "cursor position {} is beyond the epoch capped at {capped} examples",
                    self.cursor.position
                )));
            }
            self.restart()?;
        }
        Ok(())
    }

    /// Batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.layout.epoch_examples.div_ceil(self.layout.batch)
    }

    /// Number of classes (width of the soft labels).
    pub fn num_classes(&self) -> usize {
        self.source.num_classes()
    }

    /// Unreadable examples met so far in the current epoch.
    pub fn skipped_this_epoch(&self) -> &[SkippedImage] {
        &self.epoch_skips
    }

    /// The report of the last epoch that ended, with its unreadable examples.
    pub fn last_epoch_report(&self) -> Option<&EpochReport> {
        self.last_report.as_ref()
    }

    fn restart(&mut self) -> Result<()> {
        // Stop the old producer before starting the new one so they do not compete for workers.
        self.producer.stop();
        self.producer = Producer::spawn(
            &self.source,
            &self.pool,
            self.layout,
            self.recipe,
            self.cursor,
        )?;
        self.finished = false;
        Ok(())
    }

    /// Moves the cursor past `batch` and files its skipped examples.
    fn account(&mut self, batch: &Batch) {
        self.epoch_skips.extend(batch.skipped.iter().cloned());
        if batch.end_of_epoch {
            self.last_report = Some(EpochReport {
                epoch: batch.epoch,
                skipped: std::mem::take(&mut self.epoch_skips),
            });
        }
        self.cursor = batch.next;
    }
}

impl Iterator for Loader {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        match self.producer.receiver.recv() {
            Ok(Ok(batch)) => {
                self.account(&batch);
                Some(Ok(batch))
            }
            Ok(Err(e)) => {
                self.finished = true;
                Some(Err(e))
            }
            Err(_) => {
                self.finished = true;
                let complete = self.layout.epochs.is_some_and(|n| self.cursor.epoch >= n);
                (!complete).then(|| {
                    Err(DataError::Stopped(
                        "the batch producer thread ended unexpectedly (a worker panicked)".into(),
                    ))
                })
            }
        }
    }
}

/// Checks the layout options and counts the examples per epoch.
#[allow(clippy::too_many_arguments)]
fn layout(
    source: &dyn Source,
    batch: usize,
    shard: Shard,
    drop_last: bool,
    shuffle: bool,
    seed: u64,
    queue_depth: usize,
    epochs: Option<u64>,
) -> Result<Layout> {
    if batch == 0 {
        return Err(DataError::Config("batch must be at least 1".into()));
    }
    if queue_depth == 0 {
        return Err(DataError::Config("queue_depth must be at least 1".into()));
    }
    if source.is_empty() {
        return Err(DataError::Config("the data source holds no example".into()));
    }
    let epoch_examples = if drop_last {
        source.len() / batch * batch
    } else {
        source.len()
    };
    if epoch_examples == 0 {
        return Err(DataError::Config(format!(
            "batch {batch} is larger than the {} examples of the source and drop_last is set",
            source.len()
        )));
    }
    Ok(Layout {
        batch,
        shard,
        shuffle,
        seed,
        queue_depth,
        epochs,
        epoch_examples,
    })
}

fn check_size(image_size: usize) -> Result<()> {
    if image_size == 0 {
        return Err(DataError::Config("image_size must be at least 1".into()));
    }
    Ok(())
}

/// The training recipe of `stage` with the stage-independent parts of `frame` (whose own size
/// and magnitude are replaced), augmented `on` the host or the device, validated (the settings
/// and the device's support are checked once by [`Loader::new`]).
fn train_recipe(stage: Stage, frame: TrainTransform, on: AugmentOn) -> Result<Recipe> {
    check_size(stage.image_size)?;
    if !stage.magnitude.is_finite() || stage.magnitude < 0.0 {
        return Err(DataError::Config(format!(
            "RandAugment magnitude must be a finite number >= 0, got {}",
            stage.magnitude
        )));
    }
    let mix = MixConfig {
        mixup: stage.mixup,
        cutmix: stage.cutmix,
    };
    mix.validate()?;
    Ok(Recipe::Train {
        transform: TrainTransform {
            image_size: stage.image_size,
            magnitude: stage.magnitude,
            ..frame
        },
        mix,
        on,
    })
}

/// The background thread that assembles batches and its channel.
struct Producer {
    receiver: Receiver<Result<Batch>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Producer {
    fn spawn(
        source: &Arc<dyn Source>,
        pool: &Arc<ThreadPool>,
        layout: Layout,
        recipe: Recipe,
        start: Cursor,
    ) -> Result<Self> {
        let (sender, receiver) = sync_channel(layout.queue_depth);
        let stop = Arc::new(AtomicBool::new(false));
        let work = Work {
            source: Arc::clone(source),
            pool: Arc::clone(pool),
            layout,
            recipe,
            stop: Arc::clone(&stop),
        };
        let thread = std::thread::Builder::new()
            .name("data-producer".into())
            .spawn(move || work.run(start, &sender))
            .map_err(|e| {
                DataError::Config(format!("cannot start the batch producer thread: {e}"))
            })?;
        Ok(Producer {
            receiver,
            stop,
            thread: Some(thread),
        })
    }

    /// Asks the thread to stop, unblocks it and waits for it.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Free queue slots so a producer blocked in `send` wakes up and sees the flag.
        while self.receiver.try_recv().is_ok() {}
        if let Some(thread) = self.thread.take() {
            // A panicked producer has nothing left to clean up; its panic was already reported
            // to the consumer as a closed channel.
            let _ = thread.join();
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Everything the producer thread owns.
struct Work {
    source: Arc<dyn Source>,
    pool: Arc<ThreadPool>,
    layout: Layout,
    recipe: Recipe,
    stop: Arc<AtomicBool>,
}

impl Work {
    /// Produces batches from `cursor` on until told to stop, the consumer goes away, the last
    /// epoch ends or a batch fails.
    fn run(&self, mut cursor: Cursor, sender: &SyncSender<Result<Batch>>) {
        let layout = self.layout;
        let mut order = (u64::MAX, Vec::new());
        while !self.stop.load(Ordering::Relaxed) {
            if layout.epochs.is_some_and(|n| cursor.epoch >= n) {
                return;
            }
            if order.0 != cursor.epoch {
                let items = self
                    .source
                    .epoch_order(layout.seed, cursor.epoch, layout.shuffle);
                order = (cursor.epoch, items);
            }
            let end = (cursor.position + layout.batch).min(layout.epoch_examples);
            let end_of_epoch = end == layout.epoch_examples;
            let next = if end_of_epoch {
                Cursor {
                    epoch: cursor.epoch + 1,
                    position: 0,
                }
            } else {
                Cursor {
                    epoch: cursor.epoch,
                    position: end,
                }
            };
            let slot = Slot {
                epoch: cursor.epoch,
                position: cursor.position,
                end_of_epoch,
                next,
            };
            let indices = &order.1[cursor.position..end];
            let shard = layout.shard;
            let indices = if shard == Shard::WHOLE {
                indices
            } else {
                &indices[shard.range(layout.batch)]
            };
            let batch = assemble(
                self.source.as_ref(),
                self.recipe,
                layout.seed,
                slot,
                indices,
                shard.len,
                &self.pool,
                &self.stop,
            );
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let failed = batch.is_err();
            if sender.send(batch).is_err() || failed {
                return;
            }
            cursor = next;
        }
    }
}
