//! Tests of the shared-memory segments: create, map, unlink, fallbacks and corrupted descriptors.

use super::*;
use unidist_serialize::{decode_with_oob, encode_with_oob, Buffer};

fn store(limit: u64, threshold: usize) -> Arc<Store> {
    let cfg = Config {
        enabled: true,
        limit,
        threshold,
    };
    // Rank 1 of a job whose rank 0 is this test process; rank 2 is on another host.
    let me = std::process::id();
    Store::new(cfg, 1, &[(me, true), (me, true), (1, false)])
}

fn exists(name: &str) -> bool {
    std::path::Path::new(SHM_DIR).join(&name[1..]).exists()
}

/// A value with inline bytes and two out-of-band buffers.
fn value() -> (String, Buffer<f64>, Buffer<u8>) {
    (
        "label".into(),
        (0..5000).map(f64::from).collect(),
        vec![7u8; 3001].into(),
    )
}

#[test]
fn a_segment_is_written_mapped_and_unlinked_when_its_creator_drops_it() {
    let s = store(1 << 30, 16);
    let v = value();
    let e = encode_with_oob(&v, 1024).unwrap();
    assert_eq!(e.buffers.len(), 2);
    let seg = s
        .create(
            ObjectId::new(7, 1_000_000 + u64::from(std::process::id())),
            &e,
        )
        .expect("segment");
    let name = seg.desc.name.clone();
    assert!(name.starts_with(PREFIX) && exists(&name));
    assert_eq!(s.used.load(Ordering::Acquire), seg.desc.len);
    assert!(seg.desc.buffers.iter().all(|b| b.1 % ALIGN as u64 == 0));

    let (got, mapped) = open(seg.desc.clone()).unwrap();
    let in_mapping: Vec<*const u8> = got.buffers.iter().map(|b| b.as_bytes().as_ptr()).collect();
    let back: (String, Buffer<f64>, Buffer<u8>) =
        decode_with_oob(&got.inline, got.buffers).unwrap();
    assert_eq!(back, v);
    // The buffers read the mapping in place, and keep it mapped after the encoding is gone.
    assert_eq!(back.1.as_bytes().as_ptr(), in_mapping[0]);
    assert_eq!(back.2.as_bytes().as_ptr(), in_mapping[1]);
    drop(mapped);
    assert_eq!(back, v);
    let mapped = open(seg.desc.clone()).unwrap().1;
    // Dropping a receiver's segment does not unlink; the creator's does, and gives the bytes
    // back to the limit.
    drop(mapped);
    assert!(exists(&name));
    drop(seg);
    assert!(!exists(&name));
    assert_eq!(s.used.load(Ordering::Acquire), 0);
    assert!(open(SegDesc {
        name,
        len: 1,
        inline: 0,
        buffers: vec![]
    })
    .is_err());
}

#[test]
fn creation_falls_back_when_the_limit_or_the_system_refuses() {
    let e = encode_with_oob(&value(), 1024).unwrap();
    // A limit below the object's size: private, and nothing is counted.
    let tiny = store(100, 16);
    assert!(tiny.create(ObjectId::new(7, 1), &e).is_none());
    assert_eq!(tiny.used.load(Ordering::Acquire), 0);
    // An invalid name (a slash inside) is refused by the system: private too.
    let s = store(1 << 30, 16);
    assert!(s.create_named("/unidist-x/y".into(), &e).is_none());
    assert_eq!(s.used.load(Ordering::Acquire), 0);
    // A part past the segment's end fails the write, which leaves no segment behind.
    let name = format!("{PREFIX}part-{}", std::process::id());
    assert!(write_segment(&name, 8, &[(4, &[0; 8])]).is_err());
    assert!(!exists(&name));
    assert!(write_segment(&name, 0, &[]).is_err());
    assert!(!exists(&name));
}

#[test]
fn only_large_values_for_other_ranks_of_this_host_go_through_shared_memory() {
    let s = store(1 << 30, 1000);
    assert!(s.wants(0, 1000));
    assert!(!s.wants(0, 999), "below the threshold");
    assert!(!s.wants(1, 5000), "to itself");
    assert!(!s.wants(2, 5000), "another host");
    assert!(!s.wants(9, 5000), "no such rank");
    assert!(s.both_here(0, 1) && !s.both_here(0, 2));
    assert!(!Store::disabled().wants(0, 1 << 20));
}

#[test]
fn corrupted_descriptors_are_errors() {
    let s = store(1 << 30, 16);
    let e = encode_with_oob(&value(), 1024).unwrap();
    let seg = s
        .create(
            ObjectId::new(8, 2_000_000 + u64::from(std::process::id())),
            &e,
        )
        .unwrap();
    let good = seg.desc.clone();
    let mut cases = Vec::new();
    let mut d = good.clone();
    d.len += 1;
    cases.push(d);
    let mut d = good.clone();
    d.inline = good.len + 1;
    cases.push(d);
    let mut d = good.clone();
    d.buffers[0].1 = u64::MAX - 3;
    cases.push(d);
    let mut d = good.clone();
    d.buffers[1].2 = good.len;
    cases.push(d);
    let mut d = good.clone();
    // Not a whole number of f64 elements.
    d.buffers[0].2 -= 3;
    cases.push(d);
    let mut d = good.clone();
    d.name = "/etc-passwd".into();
    cases.push(d);
    let mut d = good.clone();
    d.name = "/unidist-../x".into();
    cases.push(d);
    for d in cases {
        let err = open(d.clone())
            .err()
            .unwrap_or_else(|| panic!("{d:?} opened"));
        assert_eq!(err.kind(), unidist_core::ErrorKind::Backend, "{err}");
    }
    assert!(open(good).is_ok());
}

#[test]
fn sweeps_remove_this_jobs_segments_and_dead_jobs_segments() {
    let e = encode_with_oob(&value(), 1024).unwrap();
    // This rank is the lowest of its host only if rank 0 is elsewhere.
    let cfg = Config {
        enabled: true,
        limit: 1 << 30,
        threshold: 16,
    };
    let me = std::process::id();
    let job = 3_000_000 + me;
    let lowest = Store::new(cfg, 1, &[(job, false), (me, true)]);
    let seg = lowest.create(ObjectId::new(1, 1), &e).unwrap();
    let name = seg.desc.name.clone();
    std::mem::forget(seg); // as if its creator were killed
    assert!(exists(&name));
    lowest.sweep_job();
    assert!(!exists(&name));

    // A segment whose job and creator processes are gone (no such pids) is stale.
    let dead = format!("{PREFIX}4000000000-4000000001-0.1");
    write_segment(&dead, 8, &[(0, &[1; 8])]).unwrap();
    lowest.sweep_stale();
    assert!(!exists(&dead));
    // One whose creator runs (this process) is not.
    let live = format!("{PREFIX}4000000000-{me}-0.2");
    write_segment(&live, 8, &[(0, &[1; 8])]).unwrap();
    lowest.sweep_stale();
    assert!(exists(&live));
    ffi::shm_unlink(&live).unwrap();
}

/// A segment's bytes laid out as `layout` does, with every buffer `skew` bytes further on.
fn segment_bytes(e: &Encoded, skew: u64) -> (SegDesc, Vec<u8>) {
    let (mut desc, _) = layout("/unidist-test".into(), e);
    let mut bytes = vec![0u8; desc.len as usize + skew as usize];
    bytes[..e.inline.len()].copy_from_slice(&e.inline);
    for (b, d) in e.buffers.iter().zip(&mut desc.buffers) {
        d.1 += skew;
        bytes[d.1 as usize..(d.1 + d.2) as usize].copy_from_slice(b.as_bytes());
    }
    desc.len = bytes.len() as u64;
    (desc, bytes)
}

#[test]
fn segment_contents_are_untrusted_and_buffers_read_them_in_place_when_aligned() {
    let v = value();
    let e = encode_with_oob(&v, 1024).unwrap();
    type Value = (String, Buffer<f64>, Buffer<u8>);

    let (desc, bytes) = segment_bytes(&e, 0);
    let map = Arc::new(bytes);
    let got = desc.encoding(map.clone()).unwrap();
    let back: Value = decode_with_oob(&got.inline, got.buffers).unwrap();
    assert_eq!(back, v);
    let at = map.as_ptr() as usize + desc.buffers[0].1 as usize;
    assert_eq!(back.1.as_ptr() as usize, at, "read in place");

    // Buffers off alignment are copied once, and read back the same.
    let (desc, bytes) = segment_bytes(&e, 1);
    let got = desc.encoding(Arc::new(bytes)).unwrap();
    let back: Value = decode_with_oob(&got.inline, got.buffers).unwrap();
    assert_eq!(back, v);

    // Corrupted contents under a valid descriptor are decode errors, not panics: the inline
    // bytes overwritten, and a buffer shorter than the placeholder in the inline bytes says.
    let (desc, mut bytes) = segment_bytes(&e, 0);
    let inline = desc.inline as usize;
    for b in &mut bytes[unidist_serialize::HEADER_LEN..inline] {
        *b = 0xff;
    }
    let got = desc.encoding(Arc::new(bytes)).unwrap();
    assert!(decode_with_oob::<Value>(&got.inline, got.buffers).is_err());
    let (mut desc, bytes) = segment_bytes(&e, 0);
    desc.buffers[0].2 -= 8;
    let got = desc.encoding(Arc::new(bytes)).unwrap();
    assert!(matches!(
        decode_with_oob::<Value>(&got.inline, got.buffers),
        Err(unidist_serialize::SerializeError::BufferLength { index: 0, .. })
    ));
}
