//! Hot-path micro-benchmarks: produce-side batch validation (CRC included) and offset assignment.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use spate_core::batch::{build_batch, set_base_offset, BatchOptions, BatchView};
use spate_core::record::RecordSpec;

fn batch_of(records: usize, value_len: usize) -> Vec<u8> {
    let value = vec![0x5a; value_len];
    let specs: Vec<RecordSpec<'_>> = (0..records)
        .map(|i| RecordSpec { key: None, value: Some(&value), headers: &[], timestamp_ms: i as i64 })
        .collect();
    build_batch(&specs, BatchOptions::default())
}

fn validate(c: &mut Criterion) {
    let batch = batch_of(16, 1024);
    let mut group = c.benchmark_group("batch");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_function("validate_produced_16x1KiB", |b| {
        b.iter(|| BatchView::validate_produced(std::hint::black_box(&batch), 1 << 20).map(|v| v.header.record_count))
    });
    let mut owned = batch.clone();
    group.bench_function("assign_base_offset", |b| {
        let mut offset = 0i64;
        b.iter(|| {
            offset += 16;
            set_base_offset(std::hint::black_box(&mut owned), offset)
        })
    });
    group.finish();
}

criterion_group!(benches, validate);
criterion_main!(benches);
