//! Workload plans and their flags, checked without a server.

use super::*;

fn args(name: WorkloadName) -> WorkloadArgs {
    WorkloadArgs {
        workload: name,
        ..WorkloadArgs::default()
    }
}

#[test]
fn sizes_and_ranges() {
    assert_eq!("100".parse(), Ok(ValueSize::fixed(100)));
    assert_eq!("16k".parse(), Ok(ValueSize::fixed(16384)));
    assert_eq!("10-2K".parse(), Ok(ValueSize { min: 10, max: 2048 }));
    assert!("5-4".parse::<ValueSize>().is_err());
    assert!("x".parse::<ValueSize>().is_err());
    assert!("65m".parse::<ValueSize>().is_err());
    let mut rng = Rng::new(1);
    let range = ValueSize { min: 3, max: 5 };
    let mut seen = [false; 3];
    for _ in 0..1000 {
        let n = range.pick(&mut rng);
        assert!((3..=5).contains(&n));
        seen[n - 3] = true;
    }
    assert_eq!(seen, [true; 3]);
}

#[test]
fn ratios() {
    assert_eq!("9:1".parse(), Ok(Ratio { gets: 9, sets: 1 }));
    assert!("0:0".parse::<Ratio>().is_err());
    assert!("9".parse::<Ratio>().is_err());
    let mut rng = Rng::new(7);
    let only_gets = Ratio { gets: 1, sets: 0 };
    let only_sets = Ratio { gets: 0, sets: 3 };
    assert!((0..100).all(|_| only_gets.pick_get(&mut rng)));
    assert!((0..100).all(|_| !only_sets.pick_get(&mut rng)));
    let gets = (0..10_000)
        .filter(|_| Ratio { gets: 9, sets: 1 }.pick_get(&mut rng))
        .count();
    assert!((8500..9500).contains(&gets), "{gets}");
}

#[test]
fn presets_and_overrides() {
    let p = plan(&args(WorkloadName::Pipelined)).unwrap();
    assert_eq!(p.groups.len(), 1);
    assert_eq!(p.groups[0].pipeline, 16);
    assert!(p.warmup);
    let p = plan(&WorkloadArgs {
        pipeline: Some(2),
        no_warmup: true,
        ..args(WorkloadName::Pipelined)
    })
    .unwrap();
    assert_eq!(p.groups[0].pipeline, 2);
    assert!(!p.warmup);
    let p = plan(&args(WorkloadName::Skewed)).unwrap();
    let names: Vec<_> = p.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["light", "heavy"]);
    assert_eq!(p.groups[0].rate, Some(2000.0));
    assert_eq!(p.groups[1].multiget, 16);
    assert_eq!(p.groups[1].value_size, ValueSize::fixed(65536));
    assert_eq!(p.max_value_size(), 65536);
    assert!(plan(&WorkloadArgs {
        heavy_connections: Some(1),
        ..args(WorkloadName::Uniform)
    })
    .is_err());
    assert_eq!(
        plan(&args(WorkloadName::ManyConns)).unwrap().connections(),
        1000
    );
}

#[test]
fn churn_is_closed_loop_one_request_per_connection() {
    let p = plan(&args(WorkloadName::Churn)).unwrap();
    assert_eq!(p.connections(), 16);
    assert_eq!(p.groups[0].pipeline, 1);
    assert!(p.warmup);
    for (rate, pipeline, why) in [
        (Some(100.0), None, "no --rate"),
        (None, Some(2), "no --pipeline"),
    ] {
        let err = plan(&WorkloadArgs {
            rate,
            pipeline,
            ..args(WorkloadName::Churn)
        })
        .unwrap_err();
        assert!(err.to_string().contains(why), "{err}");
    }
}
