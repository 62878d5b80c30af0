//! AdamW whose state can be saved and restored.
//!
//! `candle_nn::AdamW` keeps its moments and step count private, so a checkpoint could not
//! hold them and `--resume` could not continue to the same result as an unbroken run. This
//! is the same optimiser, update for update: the same candle ops in the same order on the
//! same [`candle_nn::ParamsAdamW`], with the state exposed. A test steps both side by side
//! and requires bit-identical weights, so any drift from candle's definition fails loudly.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use candle_nn::ParamsAdamW;

/// One parameter and its first and second moments.
#[derive(Debug)]
pub struct Slot {
    /// Parameter name, the key of its checkpoint entries.
    pub name: String,
    /// The parameter.
    pub var: Var,
    /// First moment (running mean of the gradient).
    pub m: Var,
    /// Second moment (running mean of the squared gradient).
    pub v: Var,
}

/// AdamW (decoupled weight decay, bias-corrected moments), as `candle_nn::AdamW`.
#[derive(Debug)]
pub struct AdamW {
    slots: Vec<Slot>,
    step_t: usize,
    params: ParamsAdamW,
}

impl AdamW {
    /// Zero moments for every named parameter, in the given order.
    pub fn new(vars: Vec<(String, Var)>, params: ParamsAdamW) -> Result<Self> {
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let m = Var::zeros(var.shape(), var.dtype(), var.device())?;
                let v = Var::zeros(var.shape(), var.dtype(), var.device())?;
                Ok(Slot { name, var, m, v })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { slots, step_t: 0, params })
    }

    /// Learning rate, betas, epsilon and weight decay.
    pub fn params(&self) -> &ParamsAdamW {
        &self.params
    }

    /// Steps taken so far (the bias correction's `t`).
    pub fn step_count(&self) -> usize {
        self.step_t
    }

    /// Every parameter with its moments, in the order given to [`AdamW::new`].
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// Restores a saved state: the step count and each parameter's moments, by name.
    pub fn restore(&mut self, step_t: usize, moments: &dyn Fn(&str) -> Option<(Tensor, Tensor)>) -> Result<()> {
        for s in &self.slots {
            let (m, v) = moments(&s.name).ok_or_else(|| candle_core::Error::Msg(format!("no optimiser state for '{}'", s.name)))?;
            s.m.set(&m)?;
            s.v.set(&v)?;
        }
        self.step_t = step_t;
        Ok(())
    }

    /// One update from `grads`; parameters without a gradient are left alone (their
    /// moments too), as in candle.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step_t += 1;
        let lr = self.params.lr;
        let lambda = self.params.weight_decay;
        let lr_lambda = lr * lambda;
        let beta1 = self.params.beta1;
        let beta2 = self.params.beta2;
        let scale_m = 1f64 / (1f64 - beta1.powi(self.step_t as i32));
        let scale_v = 1f64 / (1f64 - beta2.powi(self.step_t as i32));
        for s in &self.slots {
            let theta = &s.var;
            if let Some(g) = grads.get(theta) {
                let next_m = ((s.m.as_tensor() * beta1)? + (g * (1.0 - beta1))?)?;
                let next_v = ((s.v.as_tensor() * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
                let m_hat = (&next_m * scale_m)?;
                let v_hat = (&next_v * scale_v)?;
                let next_theta = (theta.as_tensor() * (1f64 - lr_lambda))?;
                let adjusted_grad = (m_hat / (v_hat.sqrt()? + self.params.eps)?)?;
                let next_theta = (next_theta - (adjusted_grad * lr)?)?;
                s.m.set(&next_m)?;
                s.v.set(&next_v)?;
                theta.set(&next_theta)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::Optimizer;

    #[test]
    fn steps_are_bit_identical_to_candle_nn_adamw() {
        let dev = Device::Cpu;
        let init = Tensor::arange(0f32, 12.0, &dev).unwrap().affine(0.3, -1.7).unwrap().reshape((3, 4)).unwrap();
        let ours = Var::from_tensor(&init).unwrap();
        let theirs = Var::from_tensor(&init).unwrap();
        let p = ParamsAdamW { lr: 0.05, weight_decay: 0.1, ..Default::default() };
        let mut a = AdamW::new(vec![("w".into(), ours.clone())], p.clone()).unwrap();
        let mut b = candle_nn::AdamW::new(vec![theirs.clone()], p).unwrap();
        for k in 0..6 {
            // A non-quadratic loss whose gradient changes sign and scale between steps.
            let loss = |v: &Var| (v.as_tensor().sin().unwrap() * (k as f64 + 1.0)).unwrap().sqr().unwrap().sum_all().unwrap();
            a.step(&loss(&ours).backward().unwrap()).unwrap();
            b.step(&loss(&theirs).backward().unwrap()).unwrap();
            let x = ours.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let y = theirs.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(x.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "step {k}");
        }
        assert_eq!(a.step_count(), 6);
        assert_eq!(ours.dtype(), DType::F32);
    }

    #[test]
    fn restored_state_continues_identically() {
        let dev = Device::Cpu;
        let init = Tensor::new(&[0.5f32, -1.0, 2.0], &dev).unwrap();
        let p = ParamsAdamW { lr: 0.1, ..Default::default() };
        let loss = |v: &Var| v.as_tensor().exp().unwrap().sum_all().unwrap();
        let unbroken = {
            let var = Var::from_tensor(&init).unwrap();
            let mut o = AdamW::new(vec![("x".into(), var.clone())], p.clone()).unwrap();
            for _ in 0..5 {
                o.step(&loss(&var).backward().unwrap()).unwrap();
            }
            var.as_tensor().to_vec1::<f32>().unwrap()
        };
        let resumed = {
            let var = Var::from_tensor(&init).unwrap();
            let mut o = AdamW::new(vec![("x".into(), var.clone())], p.clone()).unwrap();
            for _ in 0..3 {
                o.step(&loss(&var).backward().unwrap()).unwrap();
            }
            // What a checkpoint holds: weights, moments, step count. Rebuild from those alone.
            let saved = (o.slots()[0].m.as_tensor().copy().unwrap(), o.slots()[0].v.as_tensor().copy().unwrap());
            let (t, w) = (o.step_count(), var.as_tensor().copy().unwrap());
            drop(o);
            let var = Var::from_tensor(&w).unwrap();
            let mut o = AdamW::new(vec![("x".into(), var.clone())], p.clone()).unwrap();
            o.restore(t, &|name| (name == "x").then(|| saved.clone())).unwrap();
            for _ in 0..2 {
                o.step(&loss(&var).backward().unwrap()).unwrap();
            }
            var.as_tensor().to_vec1::<f32>().unwrap()
        };
        assert_eq!(unbroken, resumed);
        let mut o = AdamW::new(vec![("y".into(), Var::from_tensor(&init).unwrap())], p).unwrap();
        assert!(o.restore(1, &|_| None).is_err());
    }
}
