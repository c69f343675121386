"""Networks: the architecture registry (``--arch``), their layers and the conditional wrappers.

Every member module defines Flax linen modules; :mod:`gan_jax.models.architectures` pairs them
into named :class:`~gan_jax.models.architectures.Architecture` entries.
"""
