//! Values between JavaScript and Rust (through JSON text: records are JSON objects anyway), and
//! the `{ code, message, retryable }` objects the API rejects with.

use js_sys::{JSON, Object, Reflect};
use remote_cache_sync::Error;
use serde_json::Value;
use wasm_bindgen::JsValue;

use crate::code::error_code;

/// A JavaScript value as JSON (`undefined` becomes `null`).
pub(crate) fn to_json(value: &JsValue) -> Result<Value, JsValue> {
    if value.is_undefined() {
        return Ok(Value::Null);
    }
    let text = JSON::stringify(value).map_err(|_| {
        js_error(
            "invalid_input",
            "the value cannot be converted to JSON",
            false,
        )
    })?;
    let text = String::from(text);
    serde_json::from_str(&text)
        .map_err(|e| js_error("invalid_input", &format!("not JSON: {e}"), false))
}

/// A JSON value as a JavaScript value.
pub(crate) fn from_json(value: &Value) -> JsValue {
    // Serializing a `serde_json::Value` cannot fail, and its text always parses.
    JSON::parse(&value.to_string()).unwrap_or(JsValue::NULL)
}

/// The rejection object of a library error.
pub(crate) fn reject(error: &Error) -> JsValue {
    js_error(error_code(error), &error.to_string(), error.is_retryable())
}

/// `{ code, message, retryable }`.
pub(crate) fn js_error(code: &str, message: &str, retryable: bool) -> JsValue {
    let object = Object::new();
    let _ = Reflect::set(&object, &"code".into(), &code.into());
    let _ = Reflect::set(&object, &"message".into(), &message.into());
    let _ = Reflect::set(&object, &"retryable".into(), &retryable.into());
    object.into()
}
