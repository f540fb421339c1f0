//! The pricing sample message (contract section 10, version 1) and its decoder.
//!
//! One JSON object per Kafka message or per line of a samples file:
//!
//! ```json
//! {"v":1,"sample_id":"a1b2","scene":"detail","goods_id":1001,"sku_id":88,"at_ms":1781740900000,
//!  "user":{"member":false},"result":{"activity_id":7001,"price":240},
//!  "context":{"source":"redis-a","candidates":[7001,7002],"dropped":[{"aid":7002,"reason":"member_only"}]}}
//! ```
//!
//! Unknown fields are ignored (producers may add some within a version); a message whose
//! `v` is not 1, a missing or mistyped field, or values that make no sense (a result
//! with an activity but no price) are errors naming the field.

use serde::Deserialize;
use thiserror::Error;

use super::rule::Pick;
use crate::ids::{ActivityId, GoodsId};

pub const SAMPLE_VERSION: u32 = 1;

/// Where the pricing service answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scene {
    List,
    Detail,
    OrderPage,
    Order,
}

impl Scene {
    pub const ALL: [Scene; 4] = [Scene::List, Scene::Detail, Scene::OrderPage, Scene::Order];

    pub fn as_str(self) -> &'static str {
        match self {
            Scene::List => "list",
            Scene::Detail => "detail",
            Scene::OrderPage => "order_page",
            Scene::Order => "order",
        }
    }
}

/// An activity the service considered and dropped, with its reason (free text).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Dropped {
    pub aid: ActivityId,
    pub reason: String,
}

/// What the service says about how it decided (optional in a sample).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SampleContext {
    /// The target it read, by name; `None` when not given.
    pub source: Option<String>,
    pub candidates: Vec<ActivityId>,
    pub dropped: Vec<Dropped>,
}

/// One decoded sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub sample_id: String,
    pub scene: Scene,
    pub goods_id: GoodsId,
    pub sku_id: Option<u64>,
    pub at_ms: i64,
    pub member: bool,
    /// The service's answer; `None` when it found no applying activity.
    pub answer: Option<Pick>,
    pub context: Option<SampleContext>,
}

impl Sample {
    /// The target the service read, if the sample names one.
    pub fn source(&self) -> Option<&str> {
        self.context.as_ref().and_then(|c| c.source.as_deref())
    }

    /// Every activity id the sample names: the answer's, the candidates and the dropped.
    pub fn named_activities(&self) -> impl Iterator<Item = ActivityId> + '_ {
        let ctx = self.context.as_ref();
        self.answer
            .iter()
            .map(|p| p.activity_id)
            .chain(ctx.into_iter().flat_map(|c| c.candidates.iter().copied().chain(c.dropped.iter().map(|d| d.aid))))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SampleError {
    #[error("not a JSON object: {0}")]
    Syntax(String),
    #[error("sample version {0} is not supported (this build reads version {SAMPLE_VERSION})")]
    Version(u32),
    /// `field` is the dotted path (`result.price`, `context.dropped[0].aid`); empty for
    /// the top level (a missing top-level field names itself in `message`).
    #[error("{}{message}", if field.is_empty() { String::new() } else { format!("field `{field}`: ") })]
    Field { field: String, message: String },
}

#[derive(Deserialize)]
struct Head {
    v: Option<u32>,
}

#[derive(Deserialize)]
struct Wire {
    #[allow(dead_code)]
    v: u32,
    sample_id: String,
    scene: Scene,
    goods_id: GoodsId,
    #[serde(default)]
    sku_id: Option<u64>,
    at_ms: i64,
    user: WireUser,
    result: WireResult,
    #[serde(default)]
    context: Option<WireContext>,
}

#[derive(Deserialize)]
struct WireUser {
    member: bool,
}

#[derive(Deserialize)]
struct WireResult {
    activity_id: Option<ActivityId>,
    price: Option<i64>,
}

#[derive(Deserialize)]
struct WireContext {
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    candidates: Vec<ActivityId>,
    #[serde(default)]
    dropped: Vec<Dropped>,
}

fn field(field: &str, message: impl Into<String>) -> SampleError {
    SampleError::Field { field: field.into(), message: message.into() }
}

impl Sample {
    /// Decodes one message / line.
    pub fn decode(bytes: &[u8]) -> Result<Sample, SampleError> {
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            let start = String::from_utf8_lossy(&bytes[..bytes.len().min(40)]).into_owned();
            return Err(SampleError::Syntax(format!("expected `{{` at the start, found `{}`", start.trim())));
        }
        let head: Head = serde_json::from_slice(bytes).map_err(|e| SampleError::Syntax(e.to_string()))?;
        match head.v {
            None => return Err(field("", "missing field `v`")),
            Some(SAMPLE_VERSION) => {}
            Some(v) => return Err(SampleError::Version(v)),
        }
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let wire: Wire = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let message = e.inner().to_string();
            // serde_json appends " at line L column C"; the caller names the line.
            let message = message.split(" at line ").next().unwrap_or(&message).to_string();
            field(if path == "." { "" } else { &path }, message)
        })?;
        if wire.sample_id.is_empty() {
            return Err(field("sample_id", "must not be empty"));
        }
        if wire.goods_id == 0 {
            return Err(field("goods_id", "must be a positive goods id"));
        }
        if wire.at_ms < 0 {
            return Err(field("at_ms", "must not be negative"));
        }
        let answer = match (wire.result.activity_id, wire.result.price) {
            (Some(activity_id), Some(price)) => Some(Pick { activity_id, price }),
            (None, None) => None,
            _ => return Err(field("result", "activity_id and price must both be set, or both null (no activity)")),
        };
        let context = wire.context.map(|c| SampleContext {
            source: c.source.filter(|s| !s.is_empty()),
            candidates: c.candidates,
            dropped: c.dropped,
        });
        Ok(Sample {
            sample_id: wire.sample_id,
            scene: wire.scene,
            goods_id: wire.goods_id,
            sku_id: wire.sku_id,
            at_ms: wire.at_ms,
            member: wire.user.member,
            answer,
            context,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"v":1,"sample_id":"a1b2","scene":"detail","goods_id":1001,"sku_id":88,"at_ms":1781740900000,
     "user":{"member":false},
     "result":{"activity_id":7001,"price":240},
     "context":{"source":"redis-a","candidates":[7001,7002],"dropped":[{"aid":7002,"reason":"member_only"}]}}"#;

    fn err(text: &str) -> String {
        Sample::decode(text.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn decodes_the_contract_example() {
        let s = Sample::decode(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(s.sample_id, "a1b2");
        assert_eq!(s.scene, Scene::Detail);
        assert_eq!((s.goods_id, s.sku_id, s.at_ms, s.member), (1001, Some(88), 1781740900000, false));
        assert_eq!(s.answer, Some(Pick { activity_id: 7001, price: 240 }));
        let c = s.context.as_ref().unwrap();
        assert_eq!(c.source.as_deref(), Some("redis-a"));
        assert_eq!(c.candidates, vec![7001, 7002]);
        assert_eq!(c.dropped, vec![Dropped { aid: 7002, reason: "member_only".into() }]);
        assert_eq!(s.named_activities().collect::<Vec<_>>(), vec![7001, 7001, 7002, 7002]);
    }

    #[test]
    fn minimal_sample_without_sku_and_context_and_no_activity() {
        let s = Sample::decode(
            br#"{"v":1,"sample_id":"x","scene":"order_page","goods_id":5,"at_ms":0,"user":{"member":true},"result":{"activity_id":null,"price":null},"extra":1}"#,
        )
        .unwrap();
        assert_eq!((s.scene, s.sku_id, s.member, s.answer, s.context), (Scene::OrderPage, None, true, None, None));
    }

    #[test]
    fn errors_name_the_field() {
        assert!(err("{not json").starts_with("not a JSON object"), "{}", err("{not json"));
        assert!(err("[1]").starts_with("not a JSON object"));
        assert_eq!(
            err(&EXAMPLE.replace("\"v\":1", "\"v\":2")),
            "sample version 2 is not supported (this build reads version 1)"
        );
        assert_eq!(err(&EXAMPLE.replace("\"v\":1,", "")), "missing field `v`");
        assert!(err(&EXAMPLE.replace("\"detail\"", "\"home\"")).starts_with("field `scene`: unknown variant `home`"));
        assert_eq!(err(&EXAMPLE.replace("\"goods_id\":1001,", "")), "missing field `goods_id`");
        assert!(err(&EXAMPLE.replace("\"price\":240", "\"price\":\"240\""))
            .starts_with("field `result.price`: invalid type"));
        assert_eq!(
            err(&EXAMPLE.replace("\"price\":240", "\"price\":null")),
            "field `result`: activity_id and price must both be set, or both null (no activity)"
        );
        assert_eq!(err(&EXAMPLE.replace("{\"member\":false}", "{}")), "field `user`: missing field `member`");
        assert!(
            err(&EXAMPLE.replace("{\"aid\":7002,", "{\"aid\":-1,")).starts_with("field `context.dropped[0].aid`"),
            "{}",
            err(&EXAMPLE.replace("{\"aid\":7002,", "{\"aid\":-1,"))
        );
        assert_eq!(err(&EXAMPLE.replace("\"a1b2\"", "\"\"")), "field `sample_id`: must not be empty");
        assert_eq!(
            err(&EXAMPLE.replace("\"goods_id\":1001", "\"goods_id\":0")),
            "field `goods_id`: must be a positive goods id"
        );
        assert_eq!(err(&EXAMPLE.replace("1781740900000", "-5")), "field `at_ms`: must not be negative");
    }
}
