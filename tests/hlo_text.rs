//! The HLO text printer: XLA syntax, stable names, deterministic output.

use effnetv2::hlo::{Builder, ElementType, Module, Shape};

fn small_module() -> Module {
    let mut b = Builder::new("main");
    let x = b
        .parameter(0, Shape::array(ElementType::F32, &[2, 3]), "x")
        .unwrap();
    let y = b
        .parameter(1, Shape::array(ElementType::F32, &[2, 3]), "y")
        .unwrap();
    let s = b.add(x, y).unwrap();
    let r = b.reduce_sum(s, &[1]).unwrap();
    let t = b.tuple(&[s, r]).unwrap();
    Module::new("small", b.build(t).unwrap())
}

#[test]
fn prints_xla_syntax() {
    let text = small_module().to_text();
    println!("{text}");
    let expected = "\
HloModule small, entry_computation_layout={(f32[2,3]{1,0}, f32[2,3]{1,0})->(f32[2,3]{1,0}, f32[2]{0})}

%add_f32 (lhs.1: f32[], rhs.2: f32[]) -> f32[] {
  %lhs.1 = f32[] parameter(0)
  %rhs.2 = f32[] parameter(1)
  ROOT %add.3 = f32[] add(f32[] %lhs.1, f32[] %rhs.2)
}

ENTRY %main (x.4: f32[2,3]{1,0}, y.5: f32[2,3]{1,0}) -> (f32[2,3]{1,0}, f32[2]{0}) {
  %x.4 = f32[2,3]{1,0} parameter(0)
  %y.5 = f32[2,3]{1,0} parameter(1)
  %add.6 = f32[2,3]{1,0} add(f32[2,3]{1,0} %x.4, f32[2,3]{1,0} %y.5)
  %constant.7 = f32[] constant(0.0)
  %reduce.8 = f32[2]{0} reduce(f32[2,3]{1,0} %add.6, f32[] %constant.7), dimensions={1}, to_apply=%add_f32
  ROOT %tuple.9 = (f32[2,3]{1,0}, f32[2]{0}) tuple(f32[2,3]{1,0} %add.6, f32[2]{0} %reduce.8)
}

";
    assert_eq!(text, expected);
}

#[test]
fn output_is_deterministic() {
    assert_eq!(small_module().to_text(), small_module().to_text());
}
