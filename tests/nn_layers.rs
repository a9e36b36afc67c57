//! nn layers: torch names and shapes, default-init bounds, forward against the ops, and a
//! save → load round trip through safetensors into a fresh model.
use edgedistill::io::{StateDict, save_safetensors};
use edgedistill::nn::{
    Activation, Conv2d, Embedding, Forward, Linear, Module, Sequential, load_state_dict,
    state_dict_of,
};
use edgedistill::tensor::{Conv2dParams, Rng};
use edgedistill::{DType, Tensor};

#[test]
fn linear_names_init_and_forward() {
    let mut rng = Rng::new(0);
    let l = Linear::new(16, 4, true, &mut rng).unwrap();
    let names: Vec<(String, Vec<usize>)> = l
        .named_parameters()
        .into_iter()
        .map(|(n, t)| (n, t.dims().to_vec()))
        .collect();
    assert_eq!(
        names,
        vec![("weight".into(), vec![4, 16]), ("bias".into(), vec![4])]
    );
    // torch default: U(±1/sqrt(fan_in)) for both
    let bound = 1.0 / 4.0;
    for (_, t) in l.named_parameters() {
        assert!(t.requires_grad());
        assert!(t.to_vec_f64().unwrap().iter().all(|v| v.abs() <= bound));
    }
    let x = Tensor::randn([3, 16], 0.0, 1.0, &mut rng);
    let y = l.forward(&x).unwrap();
    let want = x
        .matmul(&l.weight.t().unwrap())
        .unwrap()
        .add(l.bias.as_ref().unwrap())
        .unwrap();
    let (a, b) = (y.to_vec_f64().unwrap(), want.to_vec_f64().unwrap());
    assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-5));
    let e = l
        .forward(&Tensor::zeros([3, 15], DType::F32))
        .unwrap_err()
        .to_string();
    assert!(e.contains("15") && e.contains("Linear"), "{e}");
}

#[test]
fn conv_and_embedding_layers() {
    let mut rng = Rng::new(1);
    let c = Conv2d::new(
        4,
        6,
        (3, 3),
        Conv2dParams {
            groups: 2,
            padding: (1, 1),
            ..Default::default()
        },
        true,
        &mut rng,
    )
    .unwrap();
    assert_eq!(c.weight.dims(), &[6, 2, 3, 3]);
    let y = c
        .forward(&Tensor::randn([1, 4, 5, 5], 0.0, 1.0, &mut rng))
        .unwrap();
    assert_eq!(y.dims(), &[1, 6, 5, 5]);
    assert!(
        Conv2d::new(
            4,
            6,
            (3, 3),
            Conv2dParams {
                groups: 3,
                ..Default::default()
            },
            true,
            &mut rng
        )
        .is_err()
    );
    let e = Embedding::new(10, 3, &mut rng).unwrap();
    let ids = Tensor::from_vec(vec![1i64, 9, 1, 0], [2, 2]).unwrap();
    let v = e.forward(&ids).unwrap();
    assert_eq!(v.dims(), &[2, 2, 3]);
    let w = e.weight.to_vec::<f32>().unwrap();
    assert_eq!(&v.to_vec::<f32>().unwrap()[3..6], &w[27..30]);
    assert!(
        e.forward(&Tensor::from_vec(vec![10i64], [1]).unwrap())
            .is_err()
    );
}

#[test]
fn sequential_state_dict_round_trip_through_safetensors() {
    let build = |seed| {
        let mut rng = Rng::new(seed);
        Sequential::new()
            .push(Linear::new(5, 8, true, &mut rng).unwrap())
            .push(Activation::Silu)
            .push(Linear::new(8, 2, false, &mut rng).unwrap())
    };
    let (a, b) = (build(1), build(2));
    let x = Tensor::randn([4, 5], 0.0, 1.0, &mut Rng::new(3));
    assert_ne!(
        a.forward(&x).unwrap().to_vec::<f32>().unwrap(),
        b.forward(&x).unwrap().to_vec::<f32>().unwrap()
    );
    let dir = std::env::temp_dir().join(format!("ed-nn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.safetensors");
    let sd = state_dict_of(&a);
    assert_eq!(
        sd.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["0.weight", "0.bias", "2.weight"]
    );
    save_safetensors(&path, &sd, None).unwrap();
    load_state_dict(&b, &StateDict::open(&path).unwrap(), true).unwrap();
    assert_eq!(
        a.forward(&x).unwrap().to_vec::<f32>().unwrap(),
        b.forward(&x).unwrap().to_vec::<f32>().unwrap()
    );
    std::fs::remove_dir_all(&dir).ok();
}
