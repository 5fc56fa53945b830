"""s4lite — S4, step by step.

A small, pure JAX package in which every step of the S4 paper (Gu, Goel & Ré, ICLR 2022) is one
named, typed and tested function:

==================  ============================================================
module              what it holds
==================  ============================================================
``ssm``             continuous-time SSM x' = Ax + Bu, y = Cx + Du (``simulate``)
``discretize``      Euler, bilinear and zero-order-hold discretization
``recurrence``      the recurrent view: a ``lax.scan`` over x_k = Ā x_{k-1} + B̄ u_k
``convolution``     the convolution view: kernel K̄ and FFT causal convolution
``hippo``           HiPPO matrices (``legs``, ``legt``, ``lagt``), NPLR and DPLR forms
``cauchy``          the Cauchy kernel Σ_i v_i / (z_j − w_i)
``cauchy_pallas``   the same sums fused in one Pallas (Triton) kernel, forward and backward (GPU)
``kernel``          Theorem 3: the S4 kernel via generating function + Woodbury + Cauchy
``dplr_step``       Theorem 2: the O(N) bilinear recurrent step of a DPLR SSM
``memory``          online function approximation with HiPPO (reconstructing the past)
``layer``           the S4 layer (H SSMs, conjugate symmetry, CNN and RNN modes)
``model``           the deep S4 network (pre-norm residual blocks, GLU, pooling)
``s4d``             diagonal SSMs (S4D) and the Vandermonde kernel
``selective``       selective state spaces (Mamba's selective scan)
``mamba``           the Mamba block and model
``engine``          one training engine (TrainConfig, fit, checkpoints)
``options``         option rules and one-line exits, without JAX (checked before it loads)
``fast_conv``       the GPU training step's bf16 Toeplitz convolutions
``data``            MNIST: checked downloads, local directories, the shipped sample
``train``           ``python -m s4lite.train``: sequential MNIST training CLI
``ablation``        ``python -m s4lite.ablation``: HiPPO vs random initializations
``generation``      ``python -m s4lite.generation``: autoregressive digits, RNN sampling
``viz``             plotting and widget callbacks used by the chapters
``show``            ``show_source``: a package function's code, shown on the page
==================  ============================================================

The package imports without a GPU; every function runs on whatever device JAX sees.
"""

__version__ = "0.1.0"
