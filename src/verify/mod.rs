//! Price verification (contract section 10) as the binary runs it: [`Engine`] joins the
//! handlers' [`Verifier`] (truth and source reads, the pure judgement) with the dimension
//! [`Labeler`]; `file.rs` is `reconciler verify --samples`, `tally.rs` the counts and the
//! summary, `metrics.rs` the metric names and their recording (used by `serve`).

pub mod file;
pub mod metrics;
pub mod tally;

use handlers::{StoreError, Verifier};
use model::config::Config;
use model::pricing::{Judgement, Labeler, Labels, Sample};

use crate::app::App;

/// One verified sample with its labels.
#[derive(Debug, Clone)]
pub struct Verified {
    pub sample: Sample,
    pub judgement: Judgement,
    pub labels: Labels,
}

pub struct Engine {
    verifier: Verifier,
    labeler: Labeler,
}

impl Engine {
    pub fn new(app: &App) -> Engine {
        let verifier = Verifier::new(app.handler.truth().clone(), app.handler.targets());
        let labeler = labeler(&app.config, verifier.target_names().map(str::to_string));
        Engine { verifier, labeler }
    }

    pub fn labeler(&self) -> &Labeler {
        &self.labeler
    }

    /// Verifies one batch, in order.
    pub async fn verify(&self, samples: Vec<Sample>) -> Result<Vec<Verified>, StoreError> {
        let judgements = self.verifier.verify(&samples).await?;
        Ok(samples
            .into_iter()
            .zip(judgements)
            .map(|(sample, judgement)| {
                let labels = self.labeler.labels(&sample, &judgement);
                Verified { sample, judgement, labels }
            })
            .collect())
    }
}

pub fn labeler(config: &Config, targets: impl IntoIterator<Item = String>) -> Labeler {
    let v = &config.verifier;
    Labeler::new(&v.price_bands, &v.tags, &v.biz_codes, v.max_biz_codes, targets)
}
