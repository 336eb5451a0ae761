//! Tests of the out-of-band scheme: buffers shared without copy, wrong buffer lists, nested and
//! panicking encodes and decodes, per-thread contexts.

use super::*;
use std::sync::Arc;

const THRESHOLD: usize = 4096;

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
pub(super) struct Frame {
    pub(super) label: String,
    big_f64: Buffer<f64>,
    small_i32: Buffer<i32>,
    big_u8: Buffer<u8>,
}

fn frame() -> Frame {
    Frame {
        label: "frame".into(),
        big_f64: (0..10_000).map(f64::from).collect(),
        small_i32: vec![1, 2, 3].into(),
        big_u8: vec![7u8; THRESHOLD].into(), // exactly the threshold: goes out of band
    }
}

#[test]
fn big_buffers_go_out_of_band_without_copy_and_round_trip() {
    let value = frame();
    let encoded = encode_with_oob(&value, THRESHOLD).expect("encodable");
    assert_eq!(encoded.buffers.len(), 2);
    assert!(
        encoded.inline.len() < 100,
        "inline is {} bytes",
        encoded.inline.len()
    );
    assert_eq!(
        encoded.total_len(),
        encoded.inline.len() + 80_000 + THRESHOLD
    );

    // The out-of-band buffers are the source's storage, in order of appearance.
    let [first, second] = &encoded.buffers[..] else {
        panic!("two buffers expected")
    };
    assert_eq!(first.as_bytes().as_ptr(), value.big_f64.as_bytes().as_ptr());
    assert_eq!(first.elem(), ElemType::F64);
    assert_eq!(second.as_ref().as_ptr(), value.big_u8.as_ptr());
    assert_eq!(second.len(), THRESHOLD);

    let back: Frame = decode_with_oob(&encoded.inline, encoded.buffers).expect("decodable");
    assert_eq!(back, value);
    // In one process nothing was copied: the decoded buffers are the source's storage.
    assert!(Buffer::ptr_eq(&back.big_f64, &value.big_f64));
    assert!(Buffer::ptr_eq(&back.big_u8, &value.big_u8));
    assert!(!Buffer::ptr_eq(&back.small_i32, &value.small_i32));
}

#[test]
fn plain_encode_keeps_buffers_inline() {
    let value = frame();
    let bytes = encode(&value).expect("encodable");
    assert!(bytes.len() > 80_000 + THRESHOLD);
    assert_eq!(decode::<Frame>(&bytes).expect("decodable"), value);
    // Without out-of-band buffers the two encodings agree.
    let all_inline = encode_with_oob(&value, usize::MAX).expect("encodable");
    assert!(all_inline.buffers.is_empty());
    assert_eq!(all_inline.inline, bytes);
}

#[test]
fn received_buffers_are_moved_in_when_typed_and_copied_from_bytes() {
    let value = frame();
    let encoded = encode_with_oob(&value, THRESHOLD).expect("encodable");

    // As the MPI backend does: allocate by element type and length, receive, decode.
    let received: Vec<OobBuffer> = encoded
        .buffers
        .iter()
        .map(|sent| {
            let mut buf = OobBuffer::zeroed(sent.elem(), sent.len()).expect("whole elements");
            buf.as_bytes_mut()
                .expect("unshared")
                .copy_from_slice(sent.as_bytes());
            buf
        })
        .collect();
    let received_ptr = received[0].as_bytes().as_ptr();
    let back: Frame = decode_with_oob(&encoded.inline, received).expect("decodable");
    assert_eq!(back, value);
    assert_eq!(
        back.big_f64.as_bytes().as_ptr(),
        received_ptr,
        "moved, not copied"
    );

    // Plain bytes work for every element type (copied once where alignment requires it).
    let as_bytes: Vec<Vec<u8>> = encoded
        .buffers
        .iter()
        .map(|b| b.as_bytes().to_vec())
        .collect();
    let back: Frame = decode_with_oob(&encoded.inline, as_bytes).expect("decodable");
    assert_eq!(back, value);
}

#[test]
fn wrong_buffer_lists_are_errors() {
    let encoded = encode_with_oob(&frame(), THRESHOLD).expect("encodable");
    let inline = &encoded.inline;
    let bufs = || encoded.buffers.clone();

    let mut missing = bufs();
    missing.pop();
    assert!(matches!(
        decode_with_oob::<Frame>(inline, missing),
        Err(SerializeError::MissingBuffer {
            index: 1,
            supplied: 1
        })
    ));

    assert!(matches!(
        decode_with_oob::<Frame>(inline, Vec::<OobBuffer>::new()),
        Err(SerializeError::MissingBuffer {
            index: 0,
            supplied: 0
        })
    ));

    let mut extra = bufs();
    extra.push(OobBuffer::from(vec![0u8; 3]));
    assert!(matches!(
        decode_with_oob::<Frame>(inline, extra),
        Err(SerializeError::UnusedBuffers {
            unused: 1,
            supplied: 3
        })
    ));

    let mut swapped = bufs();
    swapped.swap(0, 1);
    assert!(matches!(
        decode_with_oob::<Frame>(inline, swapped),
        Err(SerializeError::BufferLength {
            index: 0,
            expected: 80_000,
            found: THRESHOLD
        })
    ));

    assert!(matches!(
        decode::<Frame>(inline),
        Err(SerializeError::MissingBuffer {
            index: 0,
            supplied: 0
        })
    ));

    assert!(
        decode_with_oob::<Frame>(inline, bufs()).is_ok(),
        "the list itself is fine"
    );
}

#[test]
fn crafted_placeholders_are_errors() {
    type Pair = (Buffer<u16>, Buffer<u16>);
    let placeholder = |index, byte_len| WireRef::OutOfBand { index, byte_len };
    let two = || {
        vec![
            OobBuffer::from(vec![1u16; 2]),
            OobBuffer::from(vec![2u16; 2]),
        ]
    };

    let reused = frame_as::<Pair>(&(placeholder(0, 4), placeholder(0, 4)));
    assert!(matches!(
        decode_with_oob::<Pair>(&reused, two()),
        Err(SerializeError::BufferReused { index: 0 })
    ));

    let out_of_range = frame_as::<Pair>(&(placeholder(0, 4), placeholder(u64::MAX, 4)));
    assert!(matches!(
        decode_with_oob::<Pair>(&out_of_range, two()),
        Err(SerializeError::MissingBuffer {
            index: u64::MAX,
            supplied: 2
        })
    ));

    let odd_len = frame_as::<Pair>(&(placeholder(0, 4), placeholder(1, 3)));
    assert!(matches!(
        decode_with_oob::<Pair>(&odd_len, two()),
        Err(SerializeError::BadBufferLength {
            byte_len: 3,
            elem: ElemType::U16
        })
    ));

    let fine = frame_as::<Pair>(&(placeholder(1, 4), placeholder(0, 4)));
    let (a, b) = decode_with_oob::<Pair>(&fine, two()).expect("valid crafted input");
    assert_eq!(
        (a.as_slice(), b.as_slice()),
        (&[2u16, 2][..], &[1u16, 1][..])
    );
}

#[test]
fn every_truncated_prefix_of_an_oob_encoding_is_an_error() {
    let encoded = encode_with_oob(&frame(), THRESHOLD).expect("encodable");
    for len in 0..encoded.inline.len() {
        let result = decode_with_oob::<Frame>(&encoded.inline[..len], encoded.buffers.clone());
        assert!(result.is_err(), "prefix of {len} bytes decoded");
    }
}

#[test]
fn zeroed_checks_length_and_as_bytes_mut_needs_unique_storage() {
    assert!(matches!(
        OobBuffer::zeroed(ElemType::F64, 12),
        Err(SerializeError::BadBufferLength {
            byte_len: 12,
            elem: ElemType::F64
        })
    ));
    let mut buf = OobBuffer::zeroed(ElemType::I32, 12).expect("whole elements");
    assert_eq!(
        (buf.len(), buf.elem(), buf.is_empty()),
        (12, ElemType::I32, false)
    );
    assert!(buf.as_bytes_mut().is_some());
    let shared = buf.clone();
    assert!(buf.as_bytes_mut().is_none());
    drop(shared);
    assert!(buf.as_bytes_mut().is_some());
    assert_eq!(format!("{buf:?}"), "OobBuffer { elem: I32, len: 12 }");
}

/// Encodes a nested value with a plain `encode` from inside its own `Serialize` impl.
struct EncodesInside(Buffer<u8>);

impl<'de> Deserialize<'de> for EncodesInside {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (_, outer): (serde_bytes::ByteBuf, Buffer<u8>) = Deserialize::deserialize(d)?;
        Ok(Self(outer))
    }
}

impl Serialize for EncodesInside {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let inner = encode(&self.0).map_err(serde::ser::Error::custom)?;
        let nested_oob = encode_with_oob(&self.0, 0).map_err(serde::ser::Error::custom)?;
        assert_eq!(
            nested_oob.buffers.len(),
            1,
            "the nested call has its own list"
        );
        (serde_bytes::Bytes::new(&inner), &self.0).serialize(s)
    }
}

#[test]
fn nested_encode_does_not_steal_the_outer_buffers() {
    let big = Buffer::from(vec![5u8; THRESHOLD]);
    let encoded = encode_with_oob(&EncodesInside(big.clone()), THRESHOLD).expect("encodable");
    // Only the outer occurrence went out of band; the nested plain encode kept its copy inline.
    assert_eq!(encoded.buffers.len(), 1);
    assert!(encoded.inline.len() > THRESHOLD);
    let (inner, outer): (serde_bytes::ByteBuf, Buffer<u8>) = {
        // Decode the body shape directly (the header names `EncodesInside`).
        let body = &encoded.inline[HEADER_LEN..];
        let mut framed = Vec::new();
        header::write::<(serde_bytes::ByteBuf, Buffer<u8>)>(&mut framed, header::Layout::Compact);
        framed.extend_from_slice(body);
        decode_with_oob(&framed, encoded.buffers).expect("decodable")
    };
    assert_eq!(decode::<Buffer<u8>>(&inner).expect("nested bytes"), big);
    assert!(Buffer::ptr_eq(&outer, &big));
}

/// A `Deserialize` impl that runs a nested `decode` before reading its own buffer.
#[derive(Debug)]
struct DecodesInside(Buffer<u8>);

impl<'de> Deserialize<'de> for DecodesInside {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let nested = encode(&Buffer::from(vec![1u8; 8])).map_err(serde::de::Error::custom)?;
        // The nested decode must neither see nor consume the outer call's buffers.
        let _: Buffer<u8> = decode(&nested).map_err(serde::de::Error::custom)?;
        Buffer::deserialize(d).map(DecodesInside)
    }
}

#[test]
fn nested_decode_does_not_steal_the_outer_buffers() {
    let big = Buffer::from(vec![9u8; THRESHOLD]);
    let encoded = compact_with_oob::<DecodesInside>(&big, THRESHOLD);
    let back: DecodesInside = decode_with_oob(&encoded.inline, encoded.buffers).expect("decodable");
    assert!(Buffer::ptr_eq(&back.0, &big));
}

#[test]
fn a_panic_inside_encode_leaves_no_armed_context() {
    #[derive(Deserialize)]
    struct Panics(Buffer<u8>);
    impl Serialize for Panics {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeTuple;
            let mut t = s.serialize_tuple(2)?;
            t.serialize_element(&self.0)?; // goes out of band first
            panic!("user code panics mid-encode");
        }
    }
    let big = Buffer::from(vec![3u8; THRESHOLD]);
    let caught = catch_unwind(AssertUnwindSafe(|| {
        encode_with_oob(&Panics(big.clone()), 0)
    }));
    assert!(caught.is_err());
    // Outside any entry point (serialized by some other serializer) a Buffer must be inline,
    // not pushed into the panicked call's stale out-of-band list.
    let mut body = Vec::new();
    codec::encode_into(&big, &mut body).expect("encodable");
    assert!(
        body.len() > THRESHOLD,
        "buffer went out of band: {} bytes",
        body.len()
    );
    let encoded = encode_with_oob(&big, 0).expect("encodable");
    assert_eq!(
        encoded.buffers.len(),
        1,
        "a fresh list, not the panicked call's"
    );
}

#[test]
fn a_panic_inside_decode_leaves_no_armed_context() {
    struct Panics;
    impl<'de> Deserialize<'de> for Panics {
        fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
            panic!("user code panics mid-decode")
        }
    }
    let encoded = compact_with_oob::<Panics>(&Buffer::from(vec![1u8; 8]), 0);
    let framed = encoded.inline.clone();
    let buffers = encoded.buffers.clone();
    assert!(catch_unwind(AssertUnwindSafe(|| decode_with_oob::<Panics>(
        &framed, buffers
    )))
    .is_err());
    // The panicked call's buffers must not be visible to a later decode outside an entry point.
    let body = &encoded.inline[HEADER_LEN..];
    assert!(
        codec::decode_from::<Buffer<u8>>(body).is_err(),
        "took a stale buffer"
    );
    let mut plain = Vec::new();
    header::write::<Buffer<u8>>(&mut plain, header::Layout::Compact);
    plain.extend_from_slice(body);
    assert!(matches!(
        decode::<Buffer<u8>>(&plain),
        Err(SerializeError::MissingBuffer {
            index: 0,
            supplied: 0
        })
    ));
}

#[test]
fn threads_do_not_share_contexts() {
    let handles: Vec<_> = (0..4u8)
        .map(|i| {
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let value = (Buffer::from(vec![i; THRESHOLD]), Buffer::from(vec![i; 16]));
                    let encoded = encode_with_oob(&value, THRESHOLD).expect("encodable");
                    assert_eq!(encoded.buffers.len(), 1);
                    let back: (Buffer<u8>, Buffer<u8>) =
                        decode_with_oob(&encoded.inline, encoded.buffers).expect("decodable");
                    assert_eq!(back, value);
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("thread passed");
    }
}

#[test]
fn error_messages_follow_house_style() {
    let mut trailing = encode(&1u8).unwrap();
    trailing.push(0);
    let errors = [
        decode::<u8>(b"XYZW0123456789").unwrap_err(),
        decode::<u8>(b"UD").unwrap_err(),
        decode::<i32>(&encode(&1u32).unwrap()).unwrap_err(),
        decode::<bool>(&frame_as::<bool>(&3u8)).unwrap_err(),
        decode::<u8>(&trailing).unwrap_err(),
        OobBuffer::zeroed(ElemType::F32, 3).unwrap_err(),
        decode_with_oob::<u8>(&encode(&1u8).unwrap(), [vec![0u8]]).unwrap_err(),
        decode::<Buffer<u8>>(&encode_with_oob(&Buffer::<u8>::default(), 0).unwrap().inline)
            .unwrap_err(),
    ];
    let mut variants = std::collections::HashSet::new();
    for err in errors {
        let msg = err.to_string();
        assert!(!msg.starts_with(char::is_uppercase), "{msg}");
        assert!(!msg.ends_with('.'), "{msg}");
        variants.insert(std::mem::discriminant(&err));
    }
    assert_eq!(variants.len(), 8, "each case exercises another variant");
}

#[test]
fn buffers_over_foreign_bytes_decode_with_one_copy_and_check_lengths() {
    // Bytes owned elsewhere (as a shared-memory mapping would be), in an unaligned place.
    let value = vec![1.5f64, -2.0, 3.25];
    let e = encode_with_oob(&value, 8).unwrap();
    assert_eq!(e.buffers.len(), 1);
    let mut raw = vec![0u8; 1];
    raw.extend_from_slice(e.buffers[0].as_bytes());
    struct Tail(Vec<u8>);
    impl AsRef<[u8]> for Tail {
        fn as_ref(&self) -> &[u8] {
            &self.0[1..]
        }
    }
    use std::sync::Arc;
    let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = Arc::new(Tail(raw));
    let mut b = OobBuffer::from_owner(ElemType::F64, owner.clone()).unwrap();
    assert!(b.as_bytes_mut().is_none(), "foreign bytes are read-only");
    assert_eq!(b.elem(), ElemType::F64);
    let back: Vec<f64> = decode_with_oob(&e.inline, vec![b]).unwrap();
    assert_eq!(back, value);
    let as_buffer = encode_with_oob(&Buffer::<f64>::from(value.clone()), 8).unwrap();
    let b = OobBuffer::from_owner(ElemType::F64, owner.clone()).unwrap();
    let back: Buffer<f64> = decode_with_oob(&as_buffer.inline, vec![b]).unwrap();
    assert_eq!(back.as_slice(), &value[..]);
    // A length that is not a whole number of elements is an error.
    let odd: Arc<dyn AsRef<[u8]> + Send + Sync> = Arc::new(vec![0u8; 7]);
    assert!(matches!(
        OobBuffer::from_owner(ElemType::F64, odd),
        Err(SerializeError::BadBufferLength { byte_len: 7, .. })
    ));
}

/// Bytes owned elsewhere (as a shared-memory mapping is), starting `skip` bytes into an
/// allocation aligned for `u64`, so a test can choose aligned or misaligned bytes.
struct Owned {
    words: Vec<u64>,
    skip: usize,
    len: usize,
}

impl AsRef<[u8]> for Owned {
    fn as_ref(&self) -> &[u8] {
        let bytes: &[u8] = bytemuck::cast_slice(&self.words);
        &bytes[self.skip..self.skip + self.len]
    }
}

fn owned(data: &[f64], skip: usize) -> Arc<Owned> {
    let len = std::mem::size_of_val(data);
    let mut words = vec![0u64; (skip + len).div_ceil(8)];
    bytemuck::cast_slice_mut::<u64, u8>(&mut words)[skip..skip + len]
        .copy_from_slice(bytemuck::cast_slice(data));
    Arc::new(Owned { words, skip, len })
}

#[test]
fn buffers_over_an_owners_aligned_bytes_read_them_in_place() {
    let data: Vec<f64> = (0..5000).map(f64::from).collect();
    let value: Buffer<f64> = data.clone().into();
    let encoded = encode_with_oob(&value, 1024).expect("encodable");
    let framed = encode_with_oob(&(7u8, value.clone()), 1024).expect("encodable");
    let owner = owned(&data, 0);
    let at = owner.as_ref().as_ref().as_ptr();
    let mapped = || OobBuffer::from_owner(ElemType::F64, owner.clone()).expect("whole");

    // Whole (the raw layout) and as a field (the serde placeholder): no copy either way, and
    // the owner stays alive while a buffer reads it.
    let whole: Buffer<f64> = decode_with_oob(&encoded.inline, [mapped()]).expect("decodes");
    let (_, field): (u8, Buffer<f64>) =
        decode_with_oob(&framed.inline, [mapped()]).expect("decodes");
    for b in [&whole, &field] {
        assert_eq!(b.as_bytes().as_ptr(), at, "read in place");
        assert_eq!(*b, value);
    }
    assert!(Buffer::ptr_eq(&whole, &whole.clone()) && !Buffer::ptr_eq(&whole, &value));
    assert_eq!(Arc::strong_count(&owner), 3);
    // Sending it again shares the owner's bytes too.
    let again = encode_with_oob(&whole, 1024).expect("encodable");
    assert_eq!(again.buffers[0].as_bytes().as_ptr(), at);
    drop(again);
    // Taking the elements out copies them once; the owner is let go.
    let v = whole.into_vec();
    assert_ne!(v.as_ptr().cast::<u8>(), at);
    assert_eq!(v, data);
    drop(field);
    assert_eq!(Arc::strong_count(&owner), 1);

    // Natural types other than `Buffer` are copied once out of the owner's bytes.
    let vec: Vec<f64> = decode_with_oob(&encoded_vec(&data).inline, [mapped()]).expect("decodes");
    assert_eq!(vec, data);
    assert_ne!(vec.as_ptr().cast::<u8>(), at);
}

fn encoded_vec(data: &[f64]) -> Encoded {
    encode_with_oob(&data.to_vec(), 1024).expect("encodable")
}

#[test]
fn buffers_over_misaligned_bytes_are_copied_once_into_aligned_memory() {
    let data: Vec<f64> = (0..300).map(|i| f64::from(i) * 0.5).collect();
    let encoded = encode_with_oob(&Buffer::from(data.clone()), 8).expect("encodable");
    let owner = owned(&data, 4);
    let at = owner.as_ref().as_ref().as_ptr();
    let mapped = OobBuffer::from_owner(ElemType::F64, owner.clone()).expect("whole");
    let back: Buffer<f64> = decode_with_oob(&encoded.inline, [mapped]).expect("decodes");
    assert_eq!(back.as_slice(), &data[..]);
    assert_ne!(back.as_bytes().as_ptr(), at, "copied");
    assert_eq!(back.as_ptr().align_offset(std::mem::align_of::<f64>()), 0);
    assert_eq!(
        Arc::strong_count(&owner),
        1,
        "the copy does not keep the owner"
    );

    // An owner's byte count that is not whole elements is refused up front.
    let odd = Arc::new(Owned {
        words: vec![0; 4],
        skip: 0,
        len: 13,
    });
    assert!(matches!(
        OobBuffer::from_owner(ElemType::F64, odd),
        Err(SerializeError::BadBufferLength { byte_len: 13, .. })
    ));
}
