//! `tf.train.Example` (TensorFlow's `example.proto` and `feature.proto`), declared by hand for
//! `prost` like the HLO messages, and the image records of the two ImageNet layouts read from it.
//!
//! Field numbers are those of the public protos; prost accepts repeated scalars both packed and
//! unpacked, as the protobuf rules require of a parser.

use std::collections::BTreeMap;

use prost::Message;

/// `tensorflow.Example`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Example {
    #[prost(message, optional, tag = "1")]
    pub features: Option<Features>,
}

/// `tensorflow.Features`: a map from feature name to feature.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Features {
    #[prost(btree_map = "string, message", tag = "1")]
    pub feature: BTreeMap<String, Feature>,
}

/// `tensorflow.Feature`: one list of values.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Feature {
    #[prost(oneof = "Kind", tags = "1, 2, 3")]
    pub kind: Option<Kind>,
}

/// `tensorflow.Feature.kind`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Kind {
    #[prost(message, tag = "1")]
    BytesList(BytesList),
    #[prost(message, tag = "2")]
    FloatList(FloatList),
    #[prost(message, tag = "3")]
    Int64List(Int64List),
}

/// `tensorflow.BytesList`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BytesList {
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub value: Vec<Vec<u8>>,
}

/// `tensorflow.FloatList`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FloatList {
    #[prost(float, repeated, tag = "1")]
    pub value: Vec<f32>,
}

/// `tensorflow.Int64List`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Int64List {
    #[prost(int64, repeated, tag = "1")]
    pub value: Vec<i64>,
}

impl Example {
    /// Parses a serialized Example.
    pub fn decode_bytes(bytes: &[u8]) -> Result<Example, String> {
        Example::decode(bytes).map_err(|e| format!("not a tf.train.Example: {e}"))
    }

    /// An Example holding `features`.
    pub fn of(features: impl IntoIterator<Item = (String, Kind)>) -> Example {
        Example {
            features: Some(Features {
                feature: features
                    .into_iter()
                    .map(|(name, kind)| (name, Feature { kind: Some(kind) }))
                    .collect(),
            }),
        }
    }

    fn feature(&self, name: &str) -> Result<&Kind, String> {
        self.features
            .as_ref()
            .and_then(|f| f.feature.get(name))
            .and_then(|f| f.kind.as_ref())
            .ok_or_else(|| format!("the Example has no feature {name:?}"))
    }

    /// The single byte string of feature `name`.
    pub fn bytes(&self, name: &str) -> Result<&[u8], String> {
        match self.feature(name)? {
            Kind::BytesList(BytesList { value }) if value.len() == 1 => Ok(&value[0]),
            other => Err(format!(
                "feature {name:?} must hold one byte string, it holds {}",
                describe(other)
            )),
        }
    }

    /// The single integer of feature `name`.
    pub fn int64(&self, name: &str) -> Result<i64, String> {
        match self.feature(name)? {
            Kind::Int64List(Int64List { value }) if value.len() == 1 => Ok(value[0]),
            other => Err(format!(
                "feature {name:?} must hold one integer, it holds {}",
                describe(other)
            )),
        }
    }

    /// A single-byte-string feature.
    pub fn bytes_feature(value: impl Into<Vec<u8>>) -> Kind {
        Kind::BytesList(BytesList {
            value: vec![value.into()],
        })
    }

    /// A single-integer feature.
    pub fn int64_feature(value: i64) -> Kind {
        Kind::Int64List(Int64List { value: vec![value] })
    }
}

fn describe(kind: &Kind) -> String {
    match kind {
        Kind::BytesList(l) => format!("{} byte strings", l.value.len()),
        Kind::FloatList(l) => format!("{} floats", l.value.len()),
        Kind::Int64List(l) => format!("{} integers", l.value.len()),
    }
}

/// Where an ImageNet TFRecord data set comes from, which fixes its file names and features.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// `imagenet_to_gcs.py` (Google's TPU tools): `train-00000-of-01024`, `image/encoded`,
    /// `image/class/label` counted from 1, `image/class/synset`.
    ImagenetToGcs,
    /// TensorFlow Datasets `imagenet2012`: `imagenet2012-train.tfrecord-00000-of-01024`,
    /// `image`, `label` counted from 0, class names in `label.labels.txt`.
    Tfds,
}

impl std::str::FromStr for Layout {
    type Err = String;

    fn from_str(s: &str) -> Result<Layout, String> {
        match s {
            "imagenet" | "imagenet-to-gcs" => Ok(Layout::ImagenetToGcs),
            "tfds" => Ok(Layout::Tfds),
            _ => Err(format!(
                "unknown TFRecord format {s:?}: expected imagenet (imagenet_to_gcs.py shards) \
                 or tfds (TensorFlow Datasets imagenet2012)"
            )),
        }
    }
}

/// One labelled image of a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageExample {
    /// The encoded image (JPEG or PNG).
    pub encoded: Vec<u8>,
    /// Class index counted from 0.
    pub label: usize,
    /// The class's WordNet synset, where the record carries one.
    pub synset: Option<String>,
}

impl Layout {
    /// Reads the image, 0-based label and synset of a serialized Example in this layout.
    pub fn image(self, record: &[u8]) -> Result<ImageExample, String> {
        let mut example = Example::decode_bytes(record)?;
        let (image, label, synset, first) = match self {
            Layout::ImagenetToGcs => (
                "image/encoded",
                "image/class/label",
                Some("image/class/synset"),
                1,
            ),
            Layout::Tfds => ("image", "label", None, 0),
        };
        let raw = example.int64(label)?;
        let label = raw
            .checked_sub(first)
            .and_then(|l| usize::try_from(l).ok())
            .ok_or_else(|| {
                format!("feature {label:?} is {raw}; classes are counted from {first}")
            })?;
        let synset = synset
            .map(|name| {
                let bytes = example.bytes(name)?;
                String::from_utf8(bytes.to_vec())
                    .map_err(|_| format!("feature {name:?} is not UTF-8"))
            })
            .transpose()?;
        // Take the image bytes out of the message rather than copying them.
        example.bytes(image)?;
        let Some(Kind::BytesList(list)) = example
            .features
            .as_mut()
            .and_then(|f| f.feature.get_mut(image))
            .and_then(|f| f.kind.as_mut())
        else {
            unreachable!("checked by `bytes` above")
        };
        Ok(ImageExample {
            encoded: std::mem::take(&mut list.value[0]),
            label,
            synset,
        })
    }

    /// A serialized Example of `image` in this layout, with the extra features
    /// `imagenet_to_gcs.py` writes (`format` and `file_name`; and the size where known).
    pub fn encode(self, image: &ImageExample, format: &str, file_name: &str) -> Vec<u8> {
        let bytes = |s: &str| Example::bytes_feature(s.as_bytes());
        let features: Vec<(&str, Kind)> = match self {
            Layout::ImagenetToGcs => vec![
                (
                    "image/encoded",
                    Example::bytes_feature(image.encoded.clone()),
                ),
                ("image/format", bytes(format)),
                (
                    "image/class/label",
                    Example::int64_feature(image.label as i64 + 1),
                ),
                (
                    "image/class/synset",
                    bytes(image.synset.as_deref().unwrap_or_default()),
                ),
                ("image/filename", bytes(file_name)),
                ("image/colorspace", bytes("RGB")),
                ("image/channels", Example::int64_feature(3)),
            ],
            Layout::Tfds => vec![
                ("image", Example::bytes_feature(image.encoded.clone())),
                ("label", Example::int64_feature(image.label as i64)),
                ("file_name", bytes(file_name)),
            ],
        };
        Example::of(features.into_iter().map(|(n, k)| (n.to_owned(), k))).encode_to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ImageExample {
        ImageExample {
            encoded: vec![0xff, 0xd8, 1, 2, 3],
            label: 4,
            synset: Some("n01440764".into()),
        }
    }

    #[test]
    fn both_layouts_round_trip() {
        let image = sample();
        let gcs = Layout::ImagenetToGcs.encode(&image, "JPEG", "a.jpg");
        assert_eq!(Layout::ImagenetToGcs.image(&gcs), Ok(image.clone()));
        let tfds = Layout::Tfds.encode(&image, "JPEG", "a.jpg");
        let read = Layout::Tfds.image(&tfds).unwrap();
        assert_eq!(
            (read.encoded, read.label, read.synset),
            (image.encoded, 4, None)
        );
        // The layouts' feature names differ, so one layout's records are refused by the other.
        assert!(Layout::Tfds.image(&gcs).unwrap_err().contains("\"label\""));
    }

    #[test]
    fn the_one_based_label_is_counted_from_zero_and_zero_is_refused() {
        let mut example =
            Example::decode(&Layout::ImagenetToGcs.encode(&sample(), "JPEG", "a")[..]).unwrap();
        let label = Example::int64_feature(1);
        example
            .features
            .as_mut()
            .unwrap()
            .feature
            .insert("image/class/label".into(), Feature { kind: Some(label) });
        assert_eq!(
            Layout::ImagenetToGcs
                .image(&example.encode_to_vec())
                .unwrap()
                .label,
            0
        );
        let zero = Example::int64_feature(0);
        example
            .features
            .as_mut()
            .unwrap()
            .feature
            .insert("image/class/label".into(), Feature { kind: Some(zero) });
        let err = Layout::ImagenetToGcs
            .image(&example.encode_to_vec())
            .unwrap_err();
        assert_eq!(
            err,
            "feature \"image/class/label\" is 0; classes are counted from 1"
        );
    }

    /// `Int64List.value` written unpacked (one tag per value, as proto2 writers do) is read like
    /// the packed form: bytes made by hand, field 1 of wire type 0.
    #[test]
    fn unpacked_integers_are_accepted() {
        let unpacked = [0x08, 0x07];
        assert_eq!(Int64List::decode(&unpacked[..]).unwrap().value, vec![7]);
        let packed = [0x0a, 0x01, 0x07];
        assert_eq!(Int64List::decode(&packed[..]).unwrap().value, vec![7]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Layout::Tfds.image(&[0xff, 0xff, 0xff]).is_err());
        assert!(Layout::Tfds.image(&[]).unwrap_err().contains("no feature"));
    }
}
