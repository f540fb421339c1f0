//! Logic accuracy (contract section 10): the pricing sample, the price rule, the verdict
//! on one sample and the bounded labels it is counted under. Pure: the verifier in
//! `handlers` reads truth and the source target, then calls [`judge`].

pub mod dimensions;
pub mod rule;
pub mod sample;
pub mod verdict;

pub use dimensions::{Labeler, Labels};
pub use rule::{applies, winner, Pick, Query};
pub use sample::{Dropped, Sample, SampleContext, SampleError, Scene};
pub use verdict::{judge, Cause, Inconclusive, Judgement, SourceView, Verdict};
