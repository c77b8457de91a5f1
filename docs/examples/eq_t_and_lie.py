"""EQ-T, EQ-T_frac and the Lie derivative (with its layer shares) of a conv-tanh-conv net per
fill, on a band-limited 32x32 image: the table in README.md ("The equivariance microscope").

python docs/examples/eq_t_and_lie.py
"""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

import jaxeq as jq

rng = np.random.default_rng(0)
n = 32
# band-limited test image (integer frequencies |k| <= 4, no Nyquist content), 3 channels
k = np.abs(np.fft.fftfreq(n, 1 / n))
spec = np.fft.fft2(rng.normal(size=(n, n, 3)), axes=(0, 1)) * \
    ((k[:, None] <= 4) & (k[None, :] <= 4))[..., None]
x = jnp.asarray(np.real(np.fft.ifft2(spec, axes=(0, 1)))[None], jnp.float32)
x = x / jnp.abs(x).max()                                         # images in [-1, 1]
w1, w2 = (jnp.asarray(rng.normal(size=s) / 4, jnp.float32) for s in [(3, 3, 3, 8), (3, 3, 8, 3)])

def net(fill, act=jnp.tanh):
    return [partial(jq.conv, kernel=w1, fill=fill), act, partial(jq.conv, kernel=w2, fill=fill)]

eqt = jq.eq_t_shifts(jax.random.key(0), 16, n)                   # integer, |t| <= n/8
eqt_frac = jq.eq_t_shifts(jax.random.key(0), 16, n, fractional=True)
print("| fill | EQ-T roll (dB) | EQ-T translate (dB) | EQ-T_frac (dB) | Lie norm | "
      "share conv1 / act / conv2 |")
print("|---|---|---|---|---|---|")
for fill in ("circular", "zeros", "reflect"):
    f = jq.chain(*net(fill))
    rows = jq.lie_attribution(net(fill), None, x)
    shares = " / ".join(f"{r['share']:.2f}" for r in rows[:-1])
    print(f"| {fill} | {jq.eq_t_db(f, x, eqt, action='roll'):.1f} | "
          f"{jq.eq_t_db(f, x, eqt, action='translate'):.1f} | "
          f"{jq.eq_t_db(f, x, eqt_frac, action='fractional'):.1f} | "
          f"{float(jq.lie_derivative(f, x).norm[0]):.4f} | {shares} |")
