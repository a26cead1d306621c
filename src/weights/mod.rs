//! What is done with trained weights outside a run: classifying images with them (`predict`) and
//! moving them between our checkpoints and timm state dicts (`export`, `import`).
pub mod predict;
pub mod transfer;
