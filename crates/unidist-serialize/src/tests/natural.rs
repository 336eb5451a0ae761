//! The natural types' raw layout: round trips inline and out of band for every type, zero copy
//! where promised (pointer equality), and every malformed raw body an error.

use std::sync::Arc;

use proptest::prelude::*;

use crate::choice::layout_of;
use crate::header::Layout;
use crate::*;

/// Header, mode byte and length.
const RAW_OVERHEAD: usize = HEADER_LEN + 9;

/// Round-trips `value` inline, out of band by reference and out of band shared, checking the
/// layout and sizes on the way.
fn round_trips<T>(value: T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    T: Send + Sync + 'static,
{
    assert_eq!(layout_of::<T>(), Some(Layout::Raw));
    let data_len = encode(&value).expect("encodes").len() - RAW_OVERHEAD;

    let inline = encode(&value).expect("encodes");
    assert_eq!(inline[HEADER_LEN], 0, "inline mode");
    assert_eq!(decode::<T>(&inline).expect("decodes"), value);

    let below = encode_with_oob(&value, data_len + 1).expect("encodes");
    assert!(below.buffers.is_empty(), "below the threshold stays inline");
    assert_eq!(below.inline, inline);

    let by_ref = encode_with_oob(&value, data_len).expect("encodes");
    assert_eq!(by_ref.inline.len(), RAW_OVERHEAD, "only the head is inline");
    assert_eq!(by_ref.buffers.len(), 1);
    assert_eq!(by_ref.buffers[0].len(), data_len);
    let back: T = decode_with_oob(&by_ref.inline, by_ref.buffers).expect("decodes");
    assert_eq!(back, value);

    let value = Arc::new(value);
    let shared = encode_shared(&value, data_len).expect("encodes");
    assert_eq!(shared.inline.len(), RAW_OVERHEAD);
    let back: T = decode_with_oob(&shared.inline, shared.buffers).expect("decodes");
    assert_eq!(back, *value);
}

macro_rules! every_container {
    ($($e:ty: $sample:expr),*) => {$(
        let odd: Vec<$e> = $sample;
        round_trips::<Vec<$e>>(odd.clone());
        round_trips::<Vec<$e>>(Vec::new());
        round_trips::<Vec<$e>>(odd[..1].to_vec());
        round_trips::<Box<[$e]>>(odd.clone().into_boxed_slice());
        round_trips::<Box<[$e]>>(Box::default());
        round_trips::<Buffer<$e>>(Buffer::from(odd.clone()));
        round_trips::<Buffer<$e>>(Buffer::default());
    )*};
}

#[test]
fn every_natural_type_round_trips_inline_and_out_of_band() {
    every_container!(
        u8: (0..7).collect(),
        i8: vec![-128, -1, 0, 1, 127],
        u16: vec![0, 1, u16::MAX],
        i16: vec![i16::MIN, 0, 3],
        u32: vec![1, 2, 3, u32::MAX, 5, 6, 7],
        i32: vec![-1; 13],
        u64: vec![u64::MAX, 0, 1],
        i64: vec![i64::MIN, -5, 5],
        f32: vec![0.5, -0.0, f32::INFINITY, 1e-40],
        f64: vec![1.5, f64::MIN_POSITIVE, -2.0, f64::MAX, 0.25]
    );
    round_trips(String::from("natural ünïcode ✓"));
    round_trips(String::new());
    round_trips(String::from("x"));
}

#[test]
fn raw_layout_is_one_length_and_the_bytes() {
    let value: Vec<f64> = vec![1.0, 2.0, 3.0];
    let bytes = encode(&value).expect("encodes");
    assert_eq!(bytes.len(), RAW_OVERHEAD + 24);
    assert_eq!(bytes[HEADER_LEN + 1..RAW_OVERHEAD], 24u64.to_le_bytes());
    assert_eq!(
        &bytes[RAW_OVERHEAD..],
        bytemuck::cast_slice::<f64, u8>(&value)
    );
    // A natural type inside another type is not natural: a tuple goes through serde.
    assert_eq!(layout_of::<(Vec<f64>,)>(), None);
    let tuple = encode(&(value.clone(),)).expect("encodes");
    assert_ne!(tuple[5] & 0b110, (Layout::Raw as u8) << 1);
    assert_eq!(decode::<(Vec<f64>,)>(&tuple).expect("decodes").0, value);
}

#[test]
fn shared_encoding_sends_the_value_memory_and_decoding_moves_it_back() {
    let value = Arc::new((0..100_000).map(f64::from).collect::<Vec<f64>>());
    let ptr = value.as_ptr();
    let encoded = encode_shared(&value, 1024).expect("encodes");
    assert_eq!(encoded.buffers[0].as_bytes().as_ptr(), ptr.cast::<u8>());
    // The buffer keeps the value alive; once the caller lets go, decoding takes the same memory.
    drop(value);
    let back: Vec<f64> = decode_with_oob(&encoded.inline, encoded.buffers).expect("decodes");
    assert_eq!(back.as_ptr(), ptr, "moved, not copied");
    assert_eq!(back[99_999], 99_999.0);

    let text = Arc::new("shared text ".repeat(1000));
    let ptr = text.as_ptr();
    let encoded = encode_shared(&text, 1024).expect("encodes");
    assert_eq!(encoded.buffers[0].as_bytes().as_ptr(), ptr);
    drop(text);
    let back: String = decode_with_oob(&encoded.inline, encoded.buffers).expect("decodes");
    assert_eq!(back.as_ptr(), ptr);

    let boxed: Arc<Box<[u32]>> = Arc::new((0..5000).collect());
    let encoded = encode_shared(&boxed, 1024).expect("encodes");
    assert_eq!(
        encoded.buffers[0].as_bytes().as_ptr(),
        boxed.as_ptr().cast::<u8>()
    );
}

#[test]
fn a_buffer_still_held_elsewhere_is_copied_once_and_left_intact() {
    let value = Arc::new(vec![7i64; 4096]);
    let encoded = encode_shared(&value, 1024).expect("encodes");
    // `value` is still held, so the decoded vector must be a copy.
    let back: Vec<i64> =
        decode_with_oob(&encoded.inline, encoded.buffers.clone()).expect("decodes");
    assert_ne!(back.as_ptr(), value.as_ptr());
    assert_eq!(back, *value);
    assert_eq!(
        encoded.buffers[0].as_bytes(),
        bytemuck::cast_slice(&value[..])
    );
}

#[test]
fn typed_receive_buffers_are_moved_in_without_a_copy() {
    // What the MPI backend does: allocate by element type, receive the bytes, decode.
    let sent: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5).collect();
    let encoded = encode_with_oob(&sent, 64).expect("encodes");
    let mut received =
        OobBuffer::zeroed(encoded.buffers[0].elem(), encoded.buffers[0].len()).expect("allocates");
    received
        .as_bytes_mut()
        .expect("fresh buffer")
        .copy_from_slice(encoded.buffers[0].as_bytes());
    let ptr = received.as_bytes().as_ptr();
    let back: Vec<f32> = decode_with_oob(&encoded.inline, [received]).expect("decodes");
    assert_eq!(back.as_ptr().cast::<u8>(), ptr);
    assert_eq!(back, sent);

    let text = "received text".repeat(100);
    let encoded = encode_with_oob(&text, 64).expect("encodes");
    assert_eq!(encoded.buffers[0].elem(), ElemType::U8);
    let mut received = OobBuffer::zeroed(ElemType::U8, text.len()).expect("allocates");
    received
        .as_bytes_mut()
        .expect("fresh buffer")
        .copy_from_slice(text.as_bytes());
    let ptr = received.as_bytes().as_ptr();
    let back: String = decode_with_oob(&encoded.inline, [received]).expect("decodes");
    assert_eq!((back.as_ptr(), back), (ptr, text));
}

#[test]
fn untyped_received_bytes_are_copied_into_aligned_memory() {
    let sent: Vec<u64> = (0..300).collect();
    let encoded = encode_with_oob(&sent, 8).expect("encodes");
    let bytes = encoded.buffers[0].as_bytes().to_vec();
    let back: Vec<u64> = decode_with_oob(&encoded.inline, [bytes]).expect("decodes");
    assert_eq!(back, sent);
}

fn raw<T: 'static>(mode: u8, byte_len: u64, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    header::write::<T>(&mut out, Layout::Raw);
    out.push(mode);
    out.extend_from_slice(&byte_len.to_le_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn malformed_raw_bodies_are_errors() {
    // Every prefix of an inline encoding is truncated.
    let bytes = encode(&vec![1u16, 2, 3]).expect("encodes");
    for len in HEADER_LEN..bytes.len() {
        assert!(
            matches!(
                decode::<Vec<u16>>(&bytes[..len]),
                Err(SerializeError::Truncated { .. })
            ),
            "prefix of {len}"
        );
    }
    // A huge length is truncated input, not a huge allocation.
    assert!(matches!(
        decode::<Vec<f64>>(&raw::<Vec<f64>>(0, 1 << 62, &[0; 16])),
        Err(SerializeError::Truncated { .. })
    ));
    assert!(matches!(
        decode::<Vec<f64>>(&raw::<Vec<f64>>(0, 12, &[0; 12])),
        Err(SerializeError::BadBufferLength {
            byte_len: 12,
            elem: ElemType::F64
        })
    ));
    assert!(matches!(
        decode::<Vec<u8>>(&raw::<Vec<u8>>(0, 2, &[1, 2, 3])),
        Err(SerializeError::TrailingBytes { count: 1, .. })
    ));
    assert!(matches!(
        decode::<Vec<u8>>(&raw::<Vec<u8>>(7, 0, &[])),
        Err(SerializeError::Corrupt { .. })
    ));
    assert!(matches!(
        decode::<String>(&raw::<String>(0, 2, &[0xff, 0xfe])),
        Err(SerializeError::Corrupt { .. })
    ));
    // The raw layout under the header of a type that is not natural.
    assert!(matches!(
        decode::<(u8, u8)>(&raw::<(u8, u8)>(0, 2, &[1, 2])),
        Err(SerializeError::Corrupt { .. })
    ));
    // Inline data with buffers supplied.
    let inline = raw::<Vec<u8>>(0, 1, &[9]);
    assert!(matches!(
        decode_with_oob::<Vec<u8>>(&inline, [vec![1u8]]),
        Err(SerializeError::UnusedBuffers {
            unused: 1,
            supplied: 1
        })
    ));
}

#[test]
fn wrong_buffer_lists_for_a_raw_body_are_errors() {
    let head = raw::<Vec<u32>>(1, 8, &[]);
    assert!(matches!(
        decode::<Vec<u32>>(&head),
        Err(SerializeError::MissingBuffer {
            index: 0,
            supplied: 0
        })
    ));
    assert!(matches!(
        decode_with_oob::<Vec<u32>>(&head, [vec![0u8; 4]]),
        Err(SerializeError::BufferLength {
            index: 0,
            expected: 8,
            found: 4
        })
    ));
    assert!(matches!(
        decode_with_oob::<Vec<u32>>(&head, [vec![0u8; 8], vec![0u8; 8]]),
        Err(SerializeError::UnusedBuffers {
            unused: 1,
            supplied: 2
        })
    ));
    assert!(matches!(
        decode_with_oob::<Vec<u32>>(&raw::<Vec<u32>>(1, 8, &[0]), [vec![0u8; 8]]),
        Err(SerializeError::TrailingBytes { count: 1, .. })
    ));
    let bad_text = OobBuffer::from(vec![0xc3u8, 0x28]);
    assert!(matches!(
        decode_with_oob::<String>(&raw::<String>(1, 2, &[]), [bad_text]),
        Err(SerializeError::Corrupt { .. })
    ));
    // A buffer of another element type is accepted and copied (its bytes are what count).
    let back: Vec<u32> =
        decode_with_oob(&head, [OobBuffer::from(vec![1u16, 0, 2, 0])]).expect("decodes");
    assert_eq!(back, vec![1, 2]);
}

proptest! {
    #[test]
    fn random_vectors_round_trip(
        values in proptest::collection::vec(any::<i32>(), 0..300),
        text in ".{0,40}",
        threshold in 0usize..2000,
    ) {
        let encoded = encode_with_oob(&values, threshold).unwrap();
        prop_assert_eq!(encoded.buffers.len(), usize::from(values.len() * 4 >= threshold));
        prop_assert_eq!(&decode_with_oob::<Vec<i32>>(&encoded.inline, encoded.buffers).unwrap(), &values);
        let boxed: Box<[i32]> = values.clone().into();
        let encoded = encode_shared(&Arc::new(boxed.clone()), threshold).unwrap();
        prop_assert_eq!(&decode_with_oob::<Box<[i32]>>(&encoded.inline, encoded.buffers).unwrap(), &boxed);
        let encoded = encode_with_oob(&text, threshold).unwrap();
        prop_assert_eq!(&decode_with_oob::<String>(&encoded.inline, encoded.buffers).unwrap(), &text);
    }

    #[test]
    fn random_raw_bodies_never_panic(
        mode in 0u8..3,
        byte_len in prop_oneof![0u64..64, any::<u64>()],
        data in proptest::collection::vec(any::<u8>(), 0..64),
        buffers in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..3),
    ) {
        let _ = decode_with_oob::<Vec<f64>>(&raw::<Vec<f64>>(mode, byte_len, &data), buffers.clone());
        let _ = decode_with_oob::<String>(&raw::<String>(mode, byte_len, &data), buffers.clone());
        let _ = decode_with_oob::<Buffer<i16>>(&raw::<Buffer<i16>>(mode, byte_len, &data), buffers);
    }
}
