"""Every op of the library, one module per family.

Basic tensor ops (the :class:`~autograd.engine.Function` subclasses behind
the :class:`~autograd.tensor.Tensor` methods):

* :mod:`autograd.ops.arithmetic`: element-wise arithmetic, powers, the matrix product, casts;
* :mod:`autograd.ops.reduce`: sum, mean, max;
* :mod:`autograd.ops.shape`: views, reshapes, transposes, padding, concatenation, windows;
* :mod:`autograd.ops.index`: indexing, assignment, row gathers.

Kernel ops, which plugins may implement (see :mod:`autograd.kernels`). Each
module holds, for its ops, the typed public function, the contract a plugin
subclasses (signature, output rule, tolerances, conformance cases) and core's
reference forward and backward:

* :mod:`autograd.ops.activations`: relu, sigmoid, tanh, gelu, softmax, log_softmax;
* :mod:`autograd.ops.losses`: cross_entropy (and the losses no plugin implements);
* :mod:`autograd.ops.norm`: layer_norm;
* :mod:`autograd.ops.conv`: conv2d;
* :mod:`autograd.ops.pool`: max_pool2d;
* :mod:`autograd.ops.embedding`: embedding;
* :mod:`autograd.ops.attention`: scaled_dot_product_attention;
* :mod:`autograd.ops.optim`: the Adam/AdamW update.

This package imports none of them: import the family you use (or
:mod:`autograd.functional`, which gathers the activations, losses and the
other functions).
"""
