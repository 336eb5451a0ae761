//! Measures unidist's encoding against plain serde codecs on large values (not a benchmark, not
//! a test: a one-off comparison that guided the choice of codecs, see `src/codec.rs`).
//!
//! ```text
//! cargo run --release -p unidist-serialize --example codec_compare --features codec-compare
//! ```
//!
//! Prints the median encode and decode time of each codec on each value. "unidist" is this
//! crate's `encode`/`decode` (the raw layout for natural types, bincode through the watching
//! serializer for the rest); the other columns call each codec's serde entry points directly.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use unidist_serialize::OobBuffer;

#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
struct Record {
    id: u64,
    name: String,
    values: Vec<f32>,
}

/// Median of `runs` timings of `f`.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

type Encoder<T> = fn(&T) -> Vec<u8>;
type Decoder<T> = fn(&[u8]) -> T;

/// One codec's serde entry points for values of type `T`.
struct Codec<T> {
    name: &'static str,
    encode: Encoder<T>,
    decode: Decoder<T>,
}

fn codecs<T: Serialize + DeserializeOwned + 'static>() -> Vec<Codec<T>> {
    vec![
        Codec {
            name: "unidist",
            encode: |v| unidist_serialize::encode(v).expect("encodes"),
            decode: |b| unidist_serialize::decode(b).expect("decodes"),
        },
        Codec {
            name: "bincode 2",
            encode: |v| {
                bincode::serde::encode_to_vec(v, bincode::config::standard()).expect("encodes")
            },
            decode: |b| {
                bincode::serde::decode_from_slice(b, bincode::config::standard())
                    .expect("decodes")
                    .0
            },
        },
        Codec {
            name: "postcard",
            encode: |v| postcard::to_stdvec(v).expect("encodes"),
            decode: |b| postcard::from_bytes(b).expect("decodes"),
        },
        Codec {
            name: "bitcode",
            encode: |v| bitcode::serialize(v).expect("encodes"),
            decode: |b| bitcode::deserialize(b).expect("decodes"),
        },
        Codec {
            name: "MessagePack",
            encode: |v| {
                let mut out = Vec::new();
                v.serialize(&mut rmp_serde::Serializer::new(&mut out).with_struct_map())
                    .expect("encodes");
                out
            },
            decode: |b| rmp_serde::from_slice(b).expect("decodes"),
        },
        Codec {
            name: "CBOR",
            encode: |v| {
                let mut out = Vec::new();
                ciborium::into_writer(v, &mut out).expect("encodes");
                out
            },
            decode: |b| ciborium::from_reader(b).expect("decodes"),
        },
    ]
}

/// Prints the out-of-band rows of a natural value: shared encode (no copy), decode of a buffer
/// still held by the encoding (one copy, what a `&T` task argument pays), and decode of a
/// buffer received into fresh memory and held by no one else (moved).
fn out_of_band_rows<T>(value: &Arc<T>, runs: usize)
where
    T: Serialize + DeserializeOwned + PartialEq + Send + Sync + 'static,
{
    let encoded = unidist_serialize::encode_shared(value, 0).expect("encodes");
    let enc = median(runs, || {
        black_box(unidist_serialize::encode_shared(black_box(value), 0).expect("encodes"));
    });
    let shared = median(runs, || {
        let back: T =
            unidist_serialize::decode_with_oob(&encoded.inline, encoded.buffers.iter().cloned())
                .expect("decodes");
        black_box(back);
    });
    let mut moved = Vec::with_capacity(runs);
    for _ in 0..runs {
        let sent = &encoded.buffers[0];
        let mut received = OobBuffer::zeroed(sent.elem(), sent.len()).expect("allocates");
        received
            .as_bytes_mut()
            .expect("fresh")
            .copy_from_slice(sent.as_bytes());
        let start = Instant::now();
        let back: T =
            unidist_serialize::decode_with_oob(&encoded.inline, [received]).expect("decodes");
        moved.push(start.elapsed());
        assert!(back == **value, "out-of-band round trip");
    }
    moved.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| unidist out of band | {:.1} MB | {:.3} ms (shared) | {:.1} ms (buffer still held: one copy), {:.3} ms (received buffer: moved) |",
        encoded.total_len() as f64 / 1e6,
        ms(enc),
        ms(shared),
        ms(moved[runs / 2]),
    );
}

/// Prints one row per codec for `value`.
fn compare<T>(label: &str, value: &T, runs: usize)
where
    T: Serialize + DeserializeOwned + PartialEq + 'static,
{
    println!("\n{label}");
    println!("| codec | size | encode | decode |");
    println!("|---|---|---|---|");
    for codec in codecs::<T>() {
        let bytes = (codec.encode)(value);
        assert!(
            (codec.decode)(&bytes) == *value,
            "{} round trip",
            codec.name
        );
        let enc = median(runs, || {
            black_box((codec.encode)(black_box(value)));
        });
        let dec = median(runs, || {
            black_box((codec.decode)(black_box(&bytes)));
        });
        println!(
            "| {} | {:.1} MB | {:.1} ms | {:.1} ms |",
            codec.name,
            bytes.len() as f64 / 1e6,
            enc.as_secs_f64() * 1e3,
            dec.as_secs_f64() * 1e3
        );
    }
}

fn main() {
    const MIB: usize = 1 << 20;
    let runs = 7;
    let floats: Vec<f64> = (0..64 * MIB / 8).map(|i| i as f64 * 0.25).collect();
    compare("64 MiB Vec<f64>", &floats, runs);
    out_of_band_rows(&Arc::new(floats), runs);
    let bytes: Vec<u8> = (0..64 * MIB).map(|i| (i % 251) as u8).collect();
    compare("64 MiB Vec<u8>", &bytes, runs);
    out_of_band_rows(&Arc::new(bytes), runs);
    let text: String = "unidist ünïcode text, ".repeat(16 * MIB / 24);
    compare(&format!("{} MiB String", text.len() / MIB), &text, runs);
    out_of_band_rows(&Arc::new(text), runs);
    let records: Vec<Record> = (0..100_000u64)
        .map(|i| Record {
            id: i,
            name: format!("record-{i}"),
            values: (0..16).map(|j| (i + j) as f32 * 0.5).collect(),
        })
        .collect();
    compare(
        "100,000 x Record { id: u64, name: String, values: Vec<f32> (16) }",
        &records,
        runs,
    );
}
