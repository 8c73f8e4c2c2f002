//! The run form's fields, read from a plugin's params schema (JSON Schema as
//! `schemars` writes it, or as a worker publishes it): each top-level property
//! becomes a field of its kind, with its default, whether it is required, and its
//! description. Fields hold text as typed; `params` turns them into the JSON the
//! plugin gets, and `texts` reads JSON back into them for switching from the JSON
//! editor. What a field cannot show (a nested object, say) is edited as JSON.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// How a field is edited.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Integer,
    Number,
    /// A checkbox.
    Boolean,
    Text,
    /// One of these strings.
    Choice(Vec<String>),
    /// Strings, one per line.
    TextList,
    /// String values by key, `KEY=VALUE` one per line.
    TextMap,
    /// Anything else, as JSON.
    Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub kind: Kind,
    pub required: bool,
    pub default: Option<Value>,
    pub description: Option<String>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
}

/// The fields of a plugin's params.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamsForm {
    pub fields: Vec<Field>,
}

/// Text per field name, as the inputs hold it.
pub type Texts = BTreeMap<String, String>;

impl ParamsForm {
    /// The form of an object schema with properties; `None` for any other schema
    /// (the JSON editor is then the only one).
    pub fn from_schema(schema: &Value) -> Option<ParamsForm> {
        let properties = schema.get("properties")?.as_object()?;
        if properties.is_empty() {
            return None;
        }
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut fields: Vec<Field> = properties
            .iter()
            .map(|(name, property)| {
                let resolved = resolve(schema, property);
                Field {
                    name: name.clone(),
                    kind: kind_of(schema, resolved),
                    required: required.contains(&name.as_str()),
                    default: property.get("default").or(resolved.get("default")).cloned(),
                    description: property
                        .get("description")
                        .or(resolved.get("description"))
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    minimum: resolved.get("minimum").and_then(Value::as_f64),
                    maximum: resolved.get("maximum").and_then(Value::as_f64),
                }
            })
            .collect();
        // Required fields first, each group in the schema's (alphabetical) order.
        fields.sort_by_key(|f| !f.required);
        Some(ParamsForm { fields })
    }

    /// The params the fields say. Empty fields are left out, so the plugin's
    /// defaults apply; a required one that is empty is an error, as is text that
    /// does not read as its kind. A checkbox is written when it differs from its
    /// default (or is required).
    pub fn params(&self, texts: &Texts) -> Result<Value, String> {
        let mut out = Map::new();
        for field in &self.fields {
            let text = texts.get(&field.name).map(String::as_str).unwrap_or("");
            let value = field
                .read(text)
                .map_err(|why| format!("{}: {why}", field.name))?;
            match value {
                Some(value) => {
                    out.insert(field.name.clone(), value);
                }
                None if field.required => return Err(format!("{} is required", field.name)),
                None => {}
            }
        }
        Ok(Value::Object(out))
    }

    /// The fields' text for `params`, or why they cannot hold it (a key that is no
    /// field, a value a field cannot show).
    pub fn texts(&self, params: &Value) -> Result<Texts, String> {
        let object = match params {
            Value::Object(object) => object,
            Value::Null => return Ok(Texts::new()),
            _ => return Err("parameters must be a JSON object".into()),
        };
        if let Some(unknown) = object
            .keys()
            .find(|k| !self.fields.iter().any(|f| &f.name == *k))
        {
            return Err(format!("{unknown:?} is not a field of this plugin"));
        }
        let mut texts = Texts::new();
        for field in &self.fields {
            if let Some(value) = object.get(&field.name) {
                let text = field.show(value).ok_or_else(|| {
                    format!("{}: {value} cannot be shown in its field", field.name)
                })?;
                texts.insert(field.name.clone(), text);
            }
        }
        Ok(texts)
    }
}

impl Field {
    /// What a placeholder shows: the default, when there is one.
    pub fn placeholder(&self) -> String {
        match &self.default {
            None | Some(Value::Null) => String::new(),
            Some(value) => self.show(value).unwrap_or_else(|| value.to_string()),
        }
    }

    /// Whether a checkbox with no text is ticked (its default).
    pub fn default_on(&self) -> bool {
        self.default == Some(Value::Bool(true))
    }

    fn read(&self, text: &str) -> Result<Option<Value>, String> {
        let trimmed = text.trim();
        if self.kind == Kind::Boolean {
            let on = match trimmed {
                "" => return Ok(self.required.then_some(Value::Bool(false))),
                "true" => true,
                "false" => false,
                other => return Err(format!("{other:?} is not true or false")),
            };
            return Ok((self.required || on != self.default_on()).then_some(Value::Bool(on)));
        }
        if trimmed.is_empty() {
            return Ok(None);
        }
        let value = match &self.kind {
            Kind::Integer => {
                let n: serde_json::Number = trimmed
                    .parse::<i64>()
                    .map(Into::into)
                    .or_else(|_| trimmed.parse::<u64>().map(Into::into))
                    .map_err(|_| format!("{trimmed:?} is not a whole number"))?;
                self.check_range(n.as_f64().unwrap_or(0.0))?;
                Value::Number(n)
            }
            Kind::Number => {
                // Whole numbers stay whole (`200`, not `200.0`), as typed.
                let n = trimmed
                    .parse::<i64>()
                    .ok()
                    .map(serde_json::Number::from)
                    .or_else(|| {
                        trimmed
                            .parse::<f64>()
                            .ok()
                            .and_then(serde_json::Number::from_f64)
                    })
                    .ok_or_else(|| format!("{trimmed:?} is not a number"))?;
                self.check_range(n.as_f64().unwrap_or(0.0))?;
                Value::Number(n)
            }
            Kind::Text => Value::String(text.to_owned()),
            Kind::Choice(options) if options.iter().any(|o| o == trimmed) => {
                Value::String(trimmed.to_owned())
            }
            Kind::Choice(options) => {
                return Err(format!("{trimmed:?} is not one of {}", options.join(", ")))
            }
            Kind::TextList => Value::Array(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|l| Value::String(l.to_owned()))
                    .collect(),
            ),
            Kind::TextMap => {
                let mut map = Map::new();
                for (i, line) in text
                    .lines()
                    .enumerate()
                    .filter(|(_, l)| !l.trim().is_empty())
                {
                    let (key, value) = line
                        .split_once('=')
                        .filter(|(k, _)| !k.trim().is_empty())
                        .ok_or_else(|| format!("line {} is not KEY=VALUE", i + 1))?;
                    map.insert(key.trim().to_owned(), Value::String(value.to_owned()));
                }
                Value::Object(map)
            }
            Kind::Json => serde_json::from_str(trimmed).map_err(|e| format!("not JSON: {e}"))?,
            Kind::Boolean => unreachable!("read above"),
        };
        Ok(Some(value))
    }

    fn check_range(&self, n: f64) -> Result<(), String> {
        match (self.minimum, self.maximum) {
            (Some(min), _) if n < min => Err(format!("at least {min}")),
            (_, Some(max)) if n > max => Err(format!("at most {max}")),
            _ => Ok(()),
        }
    }

    /// The text of `value` in this field (empty for null); `None` when the field
    /// cannot hold it.
    fn show(&self, value: &Value) -> Option<String> {
        if value.is_null() {
            return Some(String::new());
        }
        match (&self.kind, value) {
            (Kind::Integer | Kind::Number, Value::Number(n)) => Some(n.to_string()),
            (Kind::Boolean, Value::Bool(b)) => Some(b.to_string()),
            (Kind::Text | Kind::Choice(_), Value::String(s)) => Some(s.clone()),
            (Kind::TextList, Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .filter(|s| !s.contains('\n') && s.trim() == *s && !s.is_empty())
                })
                .collect::<Option<Vec<_>>>()
                .map(|items| items.join("\n")),
            (Kind::TextMap, Value::Object(map)) => map
                .iter()
                .map(|(k, v)| {
                    let v = v.as_str().filter(|v| !v.contains('\n'))?;
                    (!k.contains('=') && k.trim() == k && !k.is_empty()).then(|| format!("{k}={v}"))
                })
                .collect::<Option<Vec<_>>>()
                .map(|lines| lines.join("\n")),
            (Kind::Json, value) => serde_json::to_string_pretty(value).ok(),
            _ => None,
        }
    }
}

/// A property's own schema: a local `$ref` followed once.
fn resolve<'a>(root: &'a Value, property: &'a Value) -> &'a Value {
    property
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/"))
        .and_then(|path| path.split('/').try_fold(root, |node, part| node.get(part)))
        .unwrap_or(property)
}

/// The type names a schema allows, `null` aside.
fn types(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect(),
        _ => Vec::new(),
    }
}

fn kind_of(root: &Value, schema: &Value) -> Kind {
    if let Some(options) = string_choices(schema) {
        return Kind::Choice(options);
    }
    match types(schema).as_slice() {
        ["integer"] => Kind::Integer,
        ["number"] => Kind::Number,
        ["boolean"] => Kind::Boolean,
        ["string"] => Kind::Text,
        ["array"] => match schema.get("items").map(|i| types(resolve(root, i))) {
            Some(t) if t == ["string"] => Kind::TextList,
            _ => Kind::Json,
        },
        ["object"]
            if schema.get("properties").is_none()
                && schema
                    .get("additionalProperties")
                    .is_some_and(|a| types(a) == ["string"]) =>
        {
            Kind::TextMap
        }
        _ => Kind::Json,
    }
}

/// `{"enum": ["a", "b"]}` or `{"oneOf": [{"const": "a"}, …]}` of strings.
fn string_choices(schema: &Value) -> Option<Vec<String>> {
    let values: Vec<&Value> = match (schema.get("enum"), schema.get("oneOf")) {
        (Some(Value::Array(values)), _) => values.iter().collect(),
        (_, Some(Value::Array(variants))) => variants
            .iter()
            .map(|v| {
                v.get("const")
                    .or_else(|| v.get("enum")?.as_array()?.first())
            })
            .collect::<Option<Vec<_>>>()?,
        _ => return None,
    };
    let options: Vec<String> = values
        .into_iter()
        .filter(|v| !v.is_null())
        .map(|v| v.as_str().map(str::to_owned))
        .collect::<Option<Vec<_>>>()?;
    (!options.is_empty()).then_some(options)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// `shell`'s schema as `schemars` writes it, plus an enum through `$defs` and a
    /// nested object.
    fn schema() -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["argv"],
            "properties": {
                "argv": {"type": "array", "items": {"type": "string"}, "description": "The program and its arguments."},
                "cwd": {"type": ["string", "null"], "default": null},
                "env": {"type": "object", "additionalProperties": {"type": "string"}, "default": {}},
                "timeout_s": {"type": ["number", "null"], "format": "double", "default": null},
                "count": {"type": "integer", "minimum": 0, "maximum": 1000, "default": 100},
                "dry_run": {"type": "boolean", "default": false},
                "mode": {"$ref": "#/$defs/Mode", "default": "fast"},
                "target": {"$ref": "#/$defs/Target"}
            },
            "$defs": {
                "Mode": {"oneOf": [{"type": "string", "const": "fast"}, {"type": "string", "const": "safe"}]},
                "Target": {"type": "object", "properties": {"host": {"type": "string"}}}
            }
        })
    }

    fn texts(pairs: &[(&str, &str)]) -> Texts {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn each_property_becomes_a_field_of_its_kind() {
        let form = ParamsForm::from_schema(&schema()).unwrap();
        let kinds: Vec<(&str, &Kind, bool)> = form
            .fields
            .iter()
            .map(|f| (f.name.as_str(), &f.kind, f.required))
            .collect();
        let fast_safe = Kind::Choice(vec!["fast".into(), "safe".into()]);
        assert_eq!(
            kinds,
            [
                ("argv", &Kind::TextList, true),
                ("count", &Kind::Integer, false),
                ("cwd", &Kind::Text, false),
                ("dry_run", &Kind::Boolean, false),
                ("env", &Kind::TextMap, false),
                ("mode", &fast_safe, false),
                ("target", &Kind::Json, false),
                ("timeout_s", &Kind::Number, false),
            ]
        );
        assert_eq!(
            form.fields[0].description.as_deref(),
            Some("The program and its arguments.")
        );
        assert_eq!(form.fields[1].placeholder(), "100");
        assert_eq!(form.fields[2].placeholder(), "");
        assert!(ParamsForm::from_schema(&json!({"title": "AnyValue"})).is_none());
        assert!(ParamsForm::from_schema(&json!({"type": "object", "properties": {}})).is_none());
    }

    #[test]
    fn fields_become_params_and_back() {
        let form = ParamsForm::from_schema(&schema()).unwrap();
        let typed = texts(&[
            ("argv", "sh\n-c\n\necho hi  \n"),
            ("count", " 42 "),
            ("cwd", ""),
            ("dry_run", "true"),
            ("env", "A=1\nB=x=y\n"),
            ("mode", "safe"),
            ("target", r#"{"host": "db"}"#),
            ("timeout_s", "1.5"),
        ]);
        assert_eq!(
            form.params(&texts(&[("argv", "ls"), ("timeout_s", "60")]))
                .unwrap()["timeout_s"],
            json!(60)
        );
        let params = form.params(&typed).unwrap();
        assert_eq!(
            params,
            json!({"argv": ["sh", "-c", "echo hi"], "count": 42, "dry_run": true,
                   "env": {"A": "1", "B": "x=y"}, "mode": "safe", "target": {"host": "db"}, "timeout_s": 1.5})
        );
        // Back into the fields, and out again: the same params.
        let shown = form.texts(&params).unwrap();
        assert_eq!(shown["argv"], "sh\n-c\necho hi");
        assert_eq!(form.params(&shown).unwrap(), params);
        // A checkbox at its default is left out; null shows as empty.
        let shown = form
            .texts(&json!({"argv": ["ls"], "dry_run": false, "cwd": null}))
            .unwrap();
        assert_eq!(form.params(&shown).unwrap(), json!({"argv": ["ls"]}));
    }

    #[test]
    fn bad_text_names_its_field() {
        let form = ParamsForm::from_schema(&schema()).unwrap();
        let err = |pairs: &[(&str, &str)]| form.params(&texts(pairs)).unwrap_err();
        assert_eq!(err(&[]), "argv is required");
        assert_eq!(err(&[("argv", "\n \n")]), "argv is required");
        assert!(err(&[("argv", "ls"), ("count", "1.5")])
            .starts_with("count: \"1.5\" is not a whole number"));
        assert_eq!(
            err(&[("argv", "ls"), ("count", "1001")]),
            "count: at most 1000"
        );
        assert_eq!(err(&[("argv", "ls"), ("count", "-1")]), "count: at least 0");
        assert!(err(&[("argv", "ls"), ("timeout_s", "soon")]).starts_with("timeout_s: "));
        assert_eq!(
            err(&[("argv", "ls"), ("env", "A=1\nnope")]),
            "env: line 2 is not KEY=VALUE"
        );
        assert!(err(&[("argv", "ls"), ("mode", "slow")]).contains("not one of fast, safe"));
        assert!(err(&[("argv", "ls"), ("target", "{")]).starts_with("target: not JSON"));
    }

    #[test]
    fn params_a_field_cannot_show_stay_in_the_json_editor() {
        let form = ParamsForm::from_schema(&schema()).unwrap();
        assert!(form
            .texts(&json!({"argv": ["ls"], "extra": 1}))
            .unwrap_err()
            .contains("\"extra\""));
        assert!(form
            .texts(&json!({"argv": [1, 2]}))
            .unwrap_err()
            .starts_with("argv:"));
        assert!(form.texts(&json!({"argv": ["two\nlines"]})).is_err());
        assert!(form.texts(&json!({"count": "many"})).is_err());
        assert!(form.texts(&json!({"env": {"A=B": "1"}})).is_err());
        assert!(form.texts(&json!([1])).is_err());
        assert_eq!(form.texts(&Value::Null).unwrap(), Texts::new());
    }
}
