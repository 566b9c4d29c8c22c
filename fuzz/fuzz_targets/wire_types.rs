//! Every type we deserialize from the other side of the wire (or from a cache file): no panic,
//! and what parses serializes back to something that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remote_cache_sync::remote::protocol::{
    ErrorBody, GetRequest, GetResponse, PullRequest, PullResponse, PushRequest, PushResponse,
    TimeResponse,
};
use remote_cache_sync::{Cursor, JsonRecord, SyncPoint, SyncScope};
use serde_json::Value;

fn round_trips<T>(data: &[u8])
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    if let Ok(v) = serde_json::from_slice::<T>(data) {
        let text = serde_json::to_string(&v).expect("a parsed value serializes");
        let again: T = serde_json::from_str(&text).expect("a serialized value parses");
        assert_eq!(again, v);
    }
}

fn parses<T: serde::de::DeserializeOwned>(data: &[u8]) {
    let _ = serde_json::from_slice::<T>(data);
}

fuzz_target!(|data: &[u8]| {
    round_trips::<JsonRecord>(data);
    round_trips::<SyncScope>(data);
    round_trips::<Cursor>(data);
    round_trips::<SyncPoint>(data);
    parses::<PullRequest>(data);
    parses::<PushRequest<Value>>(data);
    parses::<GetRequest>(data);
    parses::<PullResponse<JsonRecord>>(data);
    parses::<PushResponse<JsonRecord>>(data);
    parses::<GetResponse<JsonRecord>>(data);
    parses::<TimeResponse>(data);
    parses::<ErrorBody>(data);
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        let _ = JsonRecord::from_value(v);
    }
});
