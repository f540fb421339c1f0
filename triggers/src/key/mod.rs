//! Key activities on the trigger side (`[key_activities]`): which activities are key
//! ([`refresh`]: the activity table re-read every `refresh_secs`, matched by
//! `model::key`), the priority lane their jobs travel ([`lane`]), and live sweeps of
//! their goods ([`sweep`]).

pub mod lane;
pub mod refresh;
pub mod sweep;

use std::sync::{Arc, RwLock};

use model::key::KeySet;

/// The key set as the refresher last read it, shared with the DTS trigger, the sweeper
/// and the admin API.
pub type SharedKeySet = Arc<RwLock<KeySet>>;

pub use lane::LanePublisher;
pub use refresh::Refresher;
pub use sweep::{last_swept, Sweeper};
