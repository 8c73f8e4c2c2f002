//! Environment values for serde: a variable is one string, read as whatever its
//! setting's type asks for (a number, a switch, a comma-separated list, a name).

use serde::de::value::SeqDeserializer;
use serde::de::{self, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

/// One variable's value.
pub struct EnvValue(pub String);

/// Why a value could not be read.
#[derive(Debug)]
pub struct EnvError(pub String);

impl std::fmt::Display for EnvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EnvError {}

impl de::Error for EnvError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        EnvError(msg.to_string())
    }
}

impl<'de> IntoDeserializer<'de, EnvError> for EnvValue {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl EnvValue {
    fn number(&self) -> Result<u64, EnvError> {
        self.0
            .trim()
            .replace('_', "")
            .parse()
            .map_err(|_| EnvError(format!("not a whole number: {:?}", self.0)))
    }
}

impl<'de> de::Deserializer<'de> for EnvValue {
    type Error = EnvError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        visitor.visit_string(self.0)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        match self.0.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "on" | "yes" => visitor.visit_bool(true),
            "false" | "0" | "off" | "no" => visitor.visit_bool(false),
            _ => Err(EnvError(format!("must be true or false, not {:?}", self.0))),
        }
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        visitor.visit_u64(self.number()?)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        visitor.visit_u64(self.number()?)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, EnvError> {
        visitor.visit_newtype_struct(self)
    }

    /// A comma-separated list; empty items are skipped.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        let items: Vec<String> = self
            .0
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .map(str::to_owned)
            .collect();
        visitor.visit_seq(SeqDeserializer::new(items.into_iter()))
    }

    /// A name, in any case.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, EnvError> {
        let name: de::value::StringDeserializer<EnvError> =
            self.0.trim().to_ascii_lowercase().into_deserializer();
        visitor.visit_enum(name)
    }

    forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct tuple tuple_struct map struct identifier ignored_any
    }
}
