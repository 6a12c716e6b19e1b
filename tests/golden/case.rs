//! One golden case, parsed from JSON, with strict bookkeeping: every param and every input an op
//! reads is marked, and whatever an op leaves unread is reported as a failure (an op that
//! silently ignored `ceil_mode` or a `bias` input would otherwise pass on the wrong numbers).

use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use tapegrad_autograd::Tensor;

/// Errors of the runner: tapegrad's own errors and the runner's messages alike.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Named results of one case: `output`, `grads.<input>`, `extra_outputs.<name>`, `steps[<t>]`.
/// Integer results (argmax indices) are held as f32, exact below 2^24.
pub type Outputs = BTreeMap<String, Tensor>;

/// How a case file lays out what is given and what is expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `inputs` and `grad_output` given; `output`, `grads` and `extra_outputs` expected.
    Differentiated,
    /// `initial_param` and a list of `grads` given; the list of `steps` expected
    /// (optimizers.json).
    Steps,
}

impl Layout {
    /// Every top-level key a case of this layout may have; any other key is a format change the
    /// runner does not understand, hence a failure.
    fn keys(self) -> &'static [&'static str] {
        match self {
            Layout::Differentiated => &[
                "name",
                "op",
                "params",
                "inputs",
                "output",
                "extra_outputs",
                "grad_output",
                "grads",
                "tol",
                "note",
            ],
            Layout::Steps => &[
                "name",
                "op",
                "params",
                "initial_param",
                "grads",
                "steps",
                "tol",
                "note",
            ],
        }
    }
}

/// A tensor as stored in a case: shape, and float32 or int64 data.
#[derive(Clone, Debug)]
pub enum Golden {
    F32(Tensor),
    I64 { shape: Vec<usize>, data: Vec<i64> },
}

impl Golden {
    /// Parses `{"shape": [...], "dtype": "float32" | "int64", "data": [...]}`.
    pub fn parse(v: &Value, what: &str) -> Result<Golden> {
        let obj = v
            .as_object()
            .ok_or_else(|| format!("{what}: expected a tensor object, found {v}"))?;
        for key in obj.keys() {
            if !["shape", "dtype", "data"].contains(&key.as_str()) {
                return Err(format!("{what}: unknown tensor field `{key}`").into());
            }
        }
        let shape: Vec<usize> = obj
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{what}: missing `shape` list"))?
            .iter()
            .map(|d| d.as_u64().map(|d| d as usize))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("{what}: `shape` must hold non-negative integers"))?;
        let data = obj
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{what}: missing `data` list"))?;
        let numel: usize = shape.iter().product();
        if data.len() != numel {
            return Err(format!(
                "{what}: shape {shape:?} holds {numel} values but `data` has {}",
                data.len()
            )
            .into());
        }
        match obj.get("dtype").and_then(Value::as_str) {
            Some("float32") => {
                // Every value is an f32 written as its shortest round-trip decimal, so parsing
                // as f64 and casting is exact.
                let vals = data
                    .iter()
                    .map(|x| x.as_f64().map(|x| x as f32))
                    .collect::<Option<Vec<f32>>>()
                    .ok_or_else(|| format!("{what}: float32 data must be numbers"))?;
                Ok(Golden::F32(Tensor::from_vec(vals, shape)?))
            }
            Some("int64") => {
                let vals = data
                    .iter()
                    .map(Value::as_i64)
                    .collect::<Option<Vec<i64>>>()
                    .ok_or_else(|| format!("{what}: int64 data must be integers"))?;
                Ok(Golden::I64 { shape, data: vals })
            }
            other => Err(format!("{what}: unsupported dtype {other:?}").into()),
        }
    }

    /// The values as an f32 tensor (integers converted; the ones here are small indices).
    pub fn to_tensor(&self) -> Result<Tensor> {
        match self {
            Golden::F32(t) => Ok(t.clone()),
            Golden::I64 { shape, data } => Ok(Tensor::from_vec(
                data.iter().map(|&v| v as f32).collect(),
                shape.clone(),
            )?),
        }
    }
}

/// One case of a case-list file.
pub struct Case {
    /// The file it came from, e.g. `conv2d.json`.
    pub file: String,
    pub name: String,
    pub op: String,
    fields: Map<String, Value>,
    params: Map<String, Value>,
    used_params: RefCell<BTreeSet<String>>,
    used_inputs: RefCell<BTreeSet<String>>,
}

impl Case {
    /// A case from the `index`-th entry of `file`; needs at least a `name` and an `op`.
    pub fn from_json(file: &str, index: usize, v: &Value) -> Result<Case> {
        let fields = v
            .as_object()
            .ok_or_else(|| format!("{file}[{index}]: a case must be a JSON object"))?
            .clone();
        let text = |key: &str| {
            fields
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("{file}[{index}]: missing string `{key}`"))
        };
        let name = text("name")?;
        let op = text("op")?;
        let params = match fields.get("params") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => {
                return Err(format!("{name}: `params` must be an object: {other}").into())
            }
        };
        Ok(Case {
            file: file.to_owned(),
            name,
            op,
            fields,
            params,
            used_params: RefCell::default(),
            used_inputs: RefCell::default(),
        })
    }

    /// Fails on a top-level key the layout does not know.
    pub fn check_keys(&self, layout: Layout) -> Result<()> {
        let unknown: Vec<&String> = self
            .fields
            .keys()
            .filter(|k| !layout.keys().contains(&k.as_str()))
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(format!("unknown case fields {unknown:?} for the {layout:?} layout").into())
        }
    }

    /// A top-level field.
    pub fn field(&self, key: &str) -> Result<&Value> {
        self.fields
            .get(key)
            .ok_or_else(|| format!("missing field `{key}`").into())
    }

    /// A top-level tensor field (`grad_output`, `initial_param`...).
    pub fn tensor(&self, key: &str) -> Result<Tensor> {
        Golden::parse(self.field(key)?, key)?.to_tensor()
    }

    /// A top-level list of tensors (`grads` and `steps` of the Steps layout).
    pub fn tensor_list(&self, key: &str) -> Result<Vec<Tensor>> {
        let list = self
            .field(key)?
            .as_array()
            .ok_or_else(|| format!("`{key}` must be a list of tensors"))?;
        list.iter()
            .enumerate()
            .map(|(i, v)| Golden::parse(v, &format!("{key}[{i}]"))?.to_tensor())
            .collect()
    }

    /// A map of tensors (`inputs`, `grads`, `extra_outputs`); absent means empty.
    pub fn tensor_map(&self, key: &str) -> Result<BTreeMap<String, Golden>> {
        let Some(v) = self.fields.get(key) else {
            return Ok(BTreeMap::new());
        };
        let map = v
            .as_object()
            .ok_or_else(|| format!("`{key}` must map names to tensors"))?;
        map.iter()
            .map(|(k, v)| Ok((k.clone(), Golden::parse(v, &format!("{key}.{k}"))?)))
            .collect()
    }

    /// `|got - expected| <= atol + rtol * |expected|`; the README's default when absent.
    pub fn tol(&self) -> Result<(f64, f64)> {
        let Some(tol) = self.fields.get("tol") else {
            return Ok((1e-4, 1e-5));
        };
        let get = |k: &str| {
            tol.get(k)
                .and_then(Value::as_f64)
                .ok_or_else(|| format!("`tol` needs a number `{k}`: {tol}"))
        };
        Ok((get("rtol")?, get("atol")?))
    }

    /// What the case expects, keyed as the ops' `Outputs`.
    pub fn expected(&self, layout: Layout) -> Result<Outputs> {
        let mut out = Outputs::new();
        match layout {
            Layout::Differentiated => {
                out.insert("output".into(), self.tensor("output")?);
                for (group, map) in [
                    ("grads", self.tensor_map("grads")?),
                    ("extra_outputs", self.tensor_map("extra_outputs")?),
                ] {
                    for (k, g) in map {
                        out.insert(format!("{group}.{k}"), g.to_tensor()?);
                    }
                }
            }
            Layout::Steps => {
                for (t, step) in self.tensor_list("steps")?.into_iter().enumerate() {
                    out.insert(format!("steps[{t}]"), step);
                }
            }
        }
        Ok(out)
    }

    // ---- params: each read marks the key as understood ----

    /// A param's raw value; missing is an error.
    pub fn param(&self, key: &str) -> Result<&Value> {
        self.used_params.borrow_mut().insert(key.to_owned());
        self.params
            .get(key)
            .ok_or_else(|| format!("missing param `{key}`").into())
    }

    /// An optional param (PyTorch's keyword default applies when absent), marked as read.
    pub fn opt_param(&self, key: &str) -> Option<&Value> {
        self.used_params.borrow_mut().insert(key.to_owned());
        self.params.get(key)
    }

    pub fn param_f32(&self, key: &str) -> Result<f32> {
        let v = self.param(key)?;
        v.as_f64()
            .map(|x| x as f32)
            .ok_or_else(|| format!("param `{key}` must be a number, found {v}").into())
    }

    pub fn param_bool(&self, key: &str) -> Result<bool> {
        let v = self.param(key)?;
        v.as_bool()
            .ok_or_else(|| format!("param `{key}` must be a boolean, found {v}").into())
    }

    pub fn param_str(&self, key: &str) -> Result<&str> {
        let v = self.param(key)?;
        v.as_str()
            .ok_or_else(|| format!("param `{key}` must be a string, found {v}").into())
    }

    pub fn param_usize(&self, key: &str) -> Result<usize> {
        let v = self.param(key)?;
        v.as_u64().map(|x| x as usize).ok_or_else(|| {
            format!("param `{key}` must be a non-negative integer, found {v}").into()
        })
    }

    /// An axis (`dim` of softmax): an integer, negative counting from the end.
    pub fn param_isize(&self, key: &str) -> Result<isize> {
        let v = self.param(key)?;
        v.as_i64()
            .map(|x| x as isize)
            .ok_or_else(|| format!("param `{key}` must be an integer, found {v}").into())
    }

    /// `param_f32`, or PyTorch's default when the param is absent.
    pub fn param_f32_or(&self, key: &str, default: f32) -> Result<f32> {
        match self.opt_param(key) {
            None => Ok(default),
            Some(_) => self.param_f32(key),
        }
    }

    /// `param_bool`, or PyTorch's default when the param is absent.
    pub fn param_bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.opt_param(key) {
            None => Ok(default),
            Some(_) => self.param_bool(key),
        }
    }

    /// `param_str`, or PyTorch's default when the param is absent.
    pub fn param_str_or<'a>(&'a self, key: &str, default: &'a str) -> Result<&'a str> {
        match self.opt_param(key) {
            None => Ok(default),
            Some(_) => self.param_str(key),
        }
    }

    /// A pair-valued param, written `[h, w]` (a single integer means both).
    pub fn param_pair(&self, key: &str) -> Result<[usize; 2]> {
        let v = self.param(key)?;
        let bad = || format!("param `{key}` must be [h, w] or one integer, found {v}");
        if let Some(x) = v.as_u64() {
            return Ok([x as usize; 2]);
        }
        if let Some([h, w]) = v.as_array().map(Vec::as_slice) {
            if let (Some(h), Some(w)) = (h.as_u64(), w.as_u64()) {
                return Ok([h as usize, w as usize]);
            }
        }
        Err(bad().into())
    }

    /// A `dim` param: `null` (every axis), one integer, or a list of integers.
    pub fn param_axes(&self, key: &str) -> Result<Option<Vec<isize>>> {
        let v = self.param(key)?;
        let bad = || format!("param `{key}` must be null, an integer or a list of integers: {v}");
        match v {
            Value::Null => Ok(None),
            Value::Number(n) => Ok(Some(vec![n.as_i64().ok_or_else(bad)? as isize])),
            Value::Array(a) => a
                .iter()
                .map(|d| d.as_i64().map(|d| d as isize))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| bad().into()),
            _ => Err(bad().into()),
        }
    }

    /// Params the op never read: parameters it does not support.
    pub fn unused_params(&self) -> Vec<String> {
        let used = self.used_params.borrow();
        self.params
            .keys()
            .filter(|k| !used.contains(*k))
            .cloned()
            .collect()
    }

    // ---- inputs: each read marks the input as consumed ----

    /// Names of the case's inputs.
    pub fn input_names(&self) -> Result<Vec<String>> {
        Ok(self.tensor_map("inputs")?.into_keys().collect())
    }

    /// Marks an input as consumed by the op.
    pub fn mark_input(&self, name: &str) {
        self.used_inputs.borrow_mut().insert(name.to_owned());
    }

    /// An int64 input as class labels (`usize`), marked consumed.
    pub fn labels(&self, name: &str) -> Result<Vec<usize>> {
        self.mark_input(name);
        let inputs = self.tensor_map("inputs")?;
        match inputs.get(name) {
            Some(Golden::I64 { data, .. }) => data
                .iter()
                .map(|&v| usize::try_from(v).map_err(|_| format!("label {v} is negative").into()))
                .collect(),
            Some(Golden::F32(_)) => Err(format!("input `{name}` must be int64 labels").into()),
            None => Err(format!("missing input `{name}`").into()),
        }
    }

    /// Inputs the op never read.
    pub fn unused_inputs(&self) -> Result<Vec<String>> {
        let used = self.used_inputs.borrow();
        Ok(self
            .input_names()?
            .into_iter()
            .filter(|k| !used.contains(k))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn params_parse_pairs_axes_and_defaults() {
        let case = Case::from_json(
            "t.json",
            0,
            &json!({"name": "p", "op": "x", "params": {
                "stride": [2, 1], "padding": 3, "groups": 4, "dim": null, "dims": [0, -1],
                "axis": 1, "bad_pair": [1, 2, 3]
            }}),
        )
        .unwrap();
        assert_eq!(case.param_pair("stride").unwrap(), [2, 1]);
        assert_eq!(case.param_pair("padding").unwrap(), [3, 3]);
        assert!(case.param_pair("bad_pair").is_err());
        assert_eq!(case.param_usize("groups").unwrap(), 4);
        assert_eq!(case.param_axes("dim").unwrap(), None);
        assert_eq!(case.param_axes("dims").unwrap(), Some(vec![0, -1]));
        assert_eq!(case.param_axes("axis").unwrap(), Some(vec![1]));
        assert_eq!(case.param_f32_or("absent", 0.5).unwrap(), 0.5);
        assert!(case.param_f32("absent").is_err());
        // Every key was read: none is left over as unsupported.
        assert_eq!(case.unused_params(), Vec::<String>::new());
    }

    #[test]
    fn tensors_check_their_shape_and_dtype() {
        let t = json!({"shape": [2], "dtype": "int64", "data": [3, 1]});
        match Golden::parse(&t, "t").unwrap() {
            Golden::I64 { shape, data } => assert_eq!((shape, data), (vec![2], vec![3, 1])),
            Golden::F32(_) => panic!("int64 parsed as float32"),
        }
        let short = json!({"shape": [2, 2], "dtype": "float32", "data": [1.0]});
        assert!(Golden::parse(&short, "t").is_err());
        let f16 = json!({"shape": [1], "dtype": "float16", "data": [1.0]});
        assert!(Golden::parse(&f16, "t").is_err());
        // A float32 subnormal survives the parse exactly.
        let sub = json!({"shape": [], "dtype": "float32", "data": [3.8e-44]});
        let Golden::F32(s) = Golden::parse(&sub, "t").unwrap() else {
            panic!("float32 parsed as int64")
        };
        assert_eq!(s.item().unwrap(), 3.8e-44_f32);
    }
}
