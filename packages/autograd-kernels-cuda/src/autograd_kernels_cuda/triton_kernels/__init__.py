"""Triton kernels for autograd's hot ops, as launch functions on raw arrays (NumPy in the interpreter, CuPy on a GPU).

Each module holds the ``@triton.jit`` kernels of one op family and the plain
functions that launch them: they take arrays (C-contiguous unless stated),
allocate outputs with the arrays' own module (NumPy or CuPy), and return
arrays. Nothing here depends on autograd's kernel contract; an adapter class
plugs them in. Importing a module imports triton: import them only where
triton is installed (:func:`autograd_kernels_cuda.triton_support.triton_missing`).

Triton reads ``TRITON_INTERPRET`` when it decorates a function, and its own
``tl.sum``/``tl.max``... helpers are decorated when triton is first imported: set
it before anything imports triton to run these kernels in the interpreter on
NumPy arrays. :mod:`.aot` compiles every kernel
ahead of time for a GPU architecture without a GPU.
"""

MODULES = ("activations", "softmax", "norm", "cross_entropy", "embedding", "adam", "pool", "conv", "attention")
