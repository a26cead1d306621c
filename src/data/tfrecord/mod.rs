//! TFRecord files: the framing ([`framing`]) shared by the ImageNet input and TensorBoard's event
//! files, and the `tf.train.Example` records of the ImageNet layouts ([`example`]).

pub mod example;
pub mod framing;

pub use example::{Example, ImageExample, Layout};
pub use framing::{masked_crc, Damage, Record, RecordError, RecordReader, RecordWriter};
