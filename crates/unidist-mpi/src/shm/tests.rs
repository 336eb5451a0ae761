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

/// An object id unique to this test process, so parallel tests never share a segment name.
fn oid(owner: u32, n: u64) -> ObjectId {
    ObjectId::new(owner, n * 10_000_000 + u64::from(std::process::id()))
}

#[test]
fn a_segment_is_written_mapped_read_in_place_and_pooled_when_its_creator_drops_it() {
    let s = store(1 << 30, 16);
    let v = value();
    let e = encode_with_oob(&v, 1024).unwrap();
    assert_eq!(e.buffers.len(), 2);
    let seg = s.create(oid(7, 1), &e).expect("segment");
    let name = seg.desc.name.clone();
    assert!(name.starts_with(PREFIX) && exists(&name));
    assert_eq!(s.used(), seg.desc.len);
    assert_eq!(seg.desc.gen, 1);
    assert!(seg.desc.buffers.iter().all(|b| b.1 % ALIGN as u64 == 0));

    let (got, mapped) = s.open(seg.desc.clone()).unwrap();
    let in_mapping: Vec<*const u8> = got.buffers.iter().map(|b| b.as_bytes().as_ptr()).collect();
    let back: (String, Buffer<f64>, Buffer<u8>) =
        decode_with_oob(&got.inline, got.buffers).unwrap();
    assert_eq!(back, v);
    // The buffers read the mapping in place, and keep it mapped after the encoding is gone.
    assert_eq!(back.1.as_bytes().as_ptr(), in_mapping[0]);
    assert_eq!(back.2.as_bytes().as_ptr(), in_mapping[1]);
    drop(mapped);
    assert_eq!(back, v);
    drop(back);
    // Dropping a receiver's segment does not unlink; the creator's drop keeps the segment,
    // counted against the limit, in its pool.
    let mapped = s.open(seg.desc.clone()).unwrap().1;
    drop(mapped);
    let old = seg.desc.clone();
    drop(seg);
    assert!(exists(&name));
    assert_eq!(s.pooled(), 1);
    assert_eq!(s.used(), old.len);
    // An object of the same size reuses it as its next use: same name, next `gen`; the
    // descriptor of the first use no longer opens, the new one reads the new bytes through the
    // mapping this process kept.
    let v2 = (
        "other".to_string(),
        v.1.iter().map(|x| -x).collect::<Buffer<f64>>(),
        v.2.clone(),
    );
    let e2 = encode_with_oob(&v2, 1024).unwrap();
    let seg2 = s.create(oid(7, 2), &e2).unwrap();
    assert_eq!((seg2.desc.name.as_str(), seg2.desc.gen), (name.as_str(), 2));
    assert_eq!(s.pooled(), 0);
    assert_eq!(s.used(), old.len, "reuse counts nothing new");
    let err = s.open(old).err().expect("the first use is over");
    assert!(err.to_string().contains("no longer holds"), "{err}");
    assert_eq!(s.cached_mappings(), 1);
    let (got, _) = s.open(seg2.desc.clone()).unwrap();
    let back: (String, Buffer<f64>, Buffer<u8>) =
        decode_with_oob(&got.inline, got.buffers).unwrap();
    assert_eq!(back, v2);
    assert_eq!(
        back.1.as_bytes().as_ptr(),
        in_mapping[0],
        "the kept mapping"
    );
    drop(back);
    drop(seg2);
    // At shutdown the pool is removed and the limit is back to zero.
    s.clear();
    assert!(!exists(&name));
    assert_eq!((s.used(), s.pooled(), s.cached_mappings()), (0, 0, 0));
    assert!(s
        .open(SegDesc {
            name,
            gen: 2,
            len: 1,
            inline: 0,
            buffers: vec![]
        })
        .is_err());
}

#[test]
fn a_segment_someone_still_reads_is_never_rewritten() {
    let s = store(1 << 30, 16);
    let v = value();
    let e = encode_with_oob(&v, 1024).unwrap();
    let seg = s.create(oid(9, 1), &e).unwrap();
    let (got, _) = s.open(seg.desc.clone()).unwrap();
    let kept: (String, Buffer<f64>, Buffer<u8>) =
        decode_with_oob(&got.inline, got.buffers).unwrap();
    let first = seg.desc.name.clone();
    drop(seg);
    // The pooled segment is still read (`kept` borrows it): the next object gets a new one.
    let other = encode_with_oob(
        &(
            "x".to_string(),
            Buffer::from(vec![5.0f64; 5000]),
            Buffer::from(vec![1u8; 3001]),
        ),
        1024,
    )
    .unwrap();
    let seg2 = s.create(oid(9, 2), &other).unwrap();
    assert_ne!(seg2.desc.name, first);
    assert_eq!(kept, v, "the reader's bytes did not change");
    // Once the reader is gone, the first segment is reused.
    drop(kept);
    let seg3 = s.create(oid(9, 3), &other).unwrap();
    assert_eq!(
        (seg3.desc.name.as_str(), seg3.desc.gen),
        (first.as_str(), 2)
    );
    // A much smaller object does not take a large pooled segment.
    drop((seg2, seg3));
    let small = encode_with_oob(&("y".to_string(), Buffer::from(vec![1.0f64; 40])), 16).unwrap();
    let seg4 = s.create(oid(9, 4), &small).unwrap();
    assert_eq!(seg4.desc.gen, 1);
    drop(seg4);
    s.clear();
}

#[test]
fn the_pool_is_bounded_and_removed_segments_leave_readers_caches() {
    let s = store(1 << 30, 16);
    let e = encode_with_oob(&value(), 1024).unwrap();
    let segs: Vec<_> = (0..=POOL_SEGMENTS as u64)
        .map(|n| s.create(oid(11, n + 1), &e).unwrap())
        .collect();
    for seg in &segs {
        drop(s.open(seg.desc.clone()).unwrap());
    }
    assert_eq!(s.cached_mappings(), POOL_SEGMENTS + 1);
    let names: Vec<String> = segs.iter().map(|g| g.desc.name.clone()).collect();
    let one = segs[0].desc.len;
    drop(segs);
    // One more freed segment than the pool holds: the oldest is removed.
    assert_eq!(s.pooled(), POOL_SEGMENTS);
    assert!(!exists(&names[0]) && names[1..].iter().all(|n| exists(n)));
    assert_eq!(s.used(), one * POOL_SEGMENTS as u64);
    // The next open drops this process's mapping of the removed one.
    let seg = s.create(oid(11, 99), &e).unwrap();
    drop(s.open(seg.desc.clone()).unwrap());
    assert_eq!(s.cached_mappings(), POOL_SEGMENTS);
    drop(seg);
    s.clear();
    assert!(names.iter().all(|n| !exists(n)));
}

#[test]
fn pooled_segments_make_room_under_the_limit() {
    let e = encode_with_oob(&value(), 1024).unwrap();
    let one = layout("/unidist-x".into(), &e).0.len;
    // Room for two segments: two in use, then freed into the pool; a third object of another
    // size needs room, which removing pooled segments makes.
    let s = store(2 * one, 16);
    let a = s.create(oid(12, 1), &e).unwrap();
    let b = s.create(oid(12, 2), &e).unwrap();
    assert!(s.create(oid(12, 3), &e).is_none(), "the limit holds");
    let names = [a.desc.name.clone(), b.desc.name.clone()];
    drop((a, b));
    assert_eq!(s.pooled(), 2);
    let big = encode_with_oob(
        &(
            "z".to_string(),
            Buffer::from(vec![2.0f64; 7000]),
            Buffer::from(vec![3u8; 10]),
        ),
        1024,
    )
    .unwrap();
    let c = s.create(oid(12, 4), &big).expect("room made from the pool");
    assert!(
        !names.iter().all(|n| exists(n)),
        "a pooled segment was removed"
    );
    assert!(s.used() <= 2 * one);
    drop(c);
    s.clear();
    assert_eq!(s.used(), 0);
}

#[test]
fn creation_falls_back_when_the_limit_or_the_system_refuses() {
    let e = encode_with_oob(&value(), 1024).unwrap();
    // A limit below the object's size: private, and nothing is counted.
    let tiny = store(100, 16);
    assert!(tiny.create(ObjectId::new(7, 1), &e).is_none());
    assert_eq!(tiny.used(), 0);
    // An invalid name (a slash inside) is refused by the system: private too.
    let s = store(1 << 30, 16);
    assert!(s.create_named("/unidist-x/y".into(), &e).is_none());
    assert_eq!(s.used(), 0);
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
    // A buffer over the header the processes share.
    d.buffers[1].1 = 0;
    cases.push(d);
    let mut d = good.clone();
    d.name = "/etc-passwd".into();
    cases.push(d);
    let mut d = good.clone();
    d.name = "/unidist-../x".into();
    cases.push(d);
    for d in cases {
        let err = s
            .open(d.clone())
            .err()
            .unwrap_or_else(|| panic!("{d:?} opened"));
        assert_eq!(err.kind(), unidist_core::ErrorKind::Backend, "{err}");
    }
    assert!(s.open(good.clone()).is_ok());
    // A descriptor of another use of the segment.
    let mut d = good;
    d.gen += 1;
    assert!(s.open(d).is_err());
    drop(seg);
    s.clear();
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
    let at = SEG_HEADER as usize;
    bytes[at..at + e.inline.len()].copy_from_slice(&e.inline);
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
    let inline = SEG_HEADER as usize + desc.inline as usize;
    for b in &mut bytes[SEG_HEADER as usize + unidist_serialize::HEADER_LEN..inline] {
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

#[test]
fn a_handed_over_argument_is_kept_for_its_receiver_until_it_is_done() {
    let s = store(1 << 30, 16);
    let v = value();
    let e = encode_with_oob(&v, 1024).unwrap();
    let desc = s.hand_over(&e).expect("segment");
    assert!(desc.name.contains("-a."), "{}", desc.name);
    // The sender keeps nothing but the pooled segment, which the registration holds back:
    // another value of its size gets a new segment.
    assert_eq!(s.pooled(), 1);
    let other = s.hand_over(&e).unwrap();
    assert_ne!(other.name, desc.name);
    // The receiver takes the registration over; the value reads the same.
    let got = s.open_handed(desc.clone()).unwrap();
    let back: (String, Buffer<f64>, Buffer<u8>) =
        decode_with_oob(&got.inline, got.buffers).unwrap();
    assert_eq!(back, v);
    // Once the receiver is done with it, the segment is free for the next value.
    drop(back);
    let third = s.hand_over(&e).unwrap();
    assert_eq!((third.name.as_str(), third.gen), (desc.name.as_str(), 2));
    // A descriptor of another use is an error, and a corrupted one too.
    let err = s.open_handed(desc.clone()).expect_err("stale");
    assert!(err.to_string().contains("does not hold"), "{err}");
    let mut bad = third.clone();
    bad.inline = bad.len;
    assert!(s.open_handed(bad).is_err());
    s.clear();
}

#[test]
fn handed_over_arguments_not_yet_opened_are_never_removed() {
    let s = store(1 << 30, 16);
    let e = encode_with_oob(&value(), 1024).unwrap();
    // More arguments in flight than the pool keeps: none of them may go before its receiver
    // opened it.
    let descs: Vec<SegDesc> = (0..POOL_SEGMENTS + 3)
        .map(|_| s.hand_over(&e).unwrap())
        .collect();
    assert!(descs.iter().all(|d| exists(&d.name)));
    assert_eq!(s.pooled(), POOL_SEGMENTS + 3);
    for d in &descs {
        let got = s.open_handed(d.clone()).unwrap();
        let back: (String, Buffer<f64>, Buffer<u8>) =
            decode_with_oob(&got.inline, got.buffers).unwrap();
        assert_eq!(back, value());
    }
    // Read and dropped: the next freed segment (the first of them, reused) brings the pool
    // back to its bound.
    let seg = s.create(oid(13, 1), &e).unwrap();
    assert_eq!(seg.desc.name, descs[0].name);
    drop(seg);
    assert_eq!(s.pooled(), POOL_SEGMENTS);
    assert_eq!(
        descs.iter().filter(|d| exists(&d.name)).count(),
        POOL_SEGMENTS
    );
    // Under the memory limit, a segment still read is not removed to make room either.
    let one = layout("/unidist-x".into(), &e).0.len;
    let tight = store(2 * one, 16);
    let a = tight.hand_over(&e).unwrap();
    let b = tight.hand_over(&e).unwrap();
    assert!(
        tight.hand_over(&e).is_none(),
        "no room: both pooled segments are in flight"
    );
    assert!(exists(&a.name) && exists(&b.name));
    drop(tight.open_handed(a).unwrap());
    assert!(
        tight.hand_over(&e).is_some(),
        "the opened and dropped one is reused"
    );
    s.clear();
    tight.clear();
}

#[test]
fn a_huge_put_waits_briefly_for_the_last_reader_of_a_segment_just_freed() {
    let s = store(1 << 30, 16);
    let huge =
        |x: u8| encode_with_oob(&Buffer::from(vec![x; SETTLE_FROM as usize + 4096]), 1024).unwrap();
    let seg = s.create(oid(14, 1), &huge(1)).unwrap();
    let first = seg.desc.name.clone();
    let reader = s.open(seg.desc.clone()).unwrap();
    drop(seg);
    // The reader lets go 20 ms after the free (a worker that has yet to receive it): the next
    // put of the same size waits for that rather than writing a new segment.
    let letgo = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(20));
        drop(reader);
    });
    let started = std::time::Instant::now();
    let seg2 = s.create(oid(14, 2), &huge(2)).unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(15));
    assert_eq!(
        (seg2.desc.name.as_str(), seg2.desc.gen),
        (first.as_str(), 2)
    );
    letgo.join().unwrap();
    // A reader that keeps it past the wait: a new segment, after at most the wait.
    let reader = s.open(seg2.desc.clone()).unwrap();
    drop(seg2);
    let started = std::time::Instant::now();
    let seg3 = s.create(oid(14, 3), &huge(3)).unwrap();
    assert_ne!(seg3.desc.name, first);
    assert!(started.elapsed() < SETTLE + std::time::Duration::from_secs(2));
    let (got, _) = reader;
    let kept: Buffer<u8> = decode_with_oob(&got.inline, got.buffers).unwrap();
    assert!(
        kept.iter().all(|b| *b == 2),
        "the reader's bytes did not change"
    );
    drop((seg3, kept));
    s.clear();
}
