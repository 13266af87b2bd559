"""How the API pages group each package's public names.

``.. jdl-api:: jdl.nn`` (``docs/_ext/jdl_autodoc.py``) opens a page with one summary table
per group (name and one-line summary, linking to the entry) and then documents the entries
group by group, in the order given here. Every name of a package's ``__all__`` must be in
exactly one group of that package (``tests/test_docs.py`` checks it): a new public name
needs a line here.

A group is ``(title, [names])``; a package maps to its groups in page order. A table row's
summary is the first sentence of the name's docstring (of its ``#:`` comment for a
constant); ``SUMMARIES`` gives one to names that have neither.
"""

from __future__ import annotations

GROUPS: dict[str, list[tuple[str, list[str]]]] = {
    "jdl": [
        ("Functions", ["fit", "evaluate", "predict", "save_model", "load_model"]),
        (
            "Sub-packages",
            ["nn", "losses", "metrics", "data", "train", "analysis", "pretrained"],
        ),
        ("Version", ["__version__"]),
    ],
    "jdl.nn": [
        ("Models", ["MLP", "CNN", "VGG", "ResNet", "CifarResNet", "RNNClassifier"]),
        ("Residual blocks", ["BasicBlock", "Bottleneck"]),
        (
            "Model zoo",
            [
                "get_model",
                "list_models",
                "register_model",
                "resnet18",
                "resnet34",
                "resnet50",
                "resnet101",
                "resnet152",
                "vgg11",
                "vgg13",
                "vgg16",
                "vgg19",
                "VGG_CONFIGS",
                "vgg_layer_plan",
            ],
        ),
        (
            "Initialisers",
            ["get_initializer", "INITIALIZER_NAMES", "normal", "uniform", "standard"],
        ),
        ("Activations", ["get_activation", "ACTIVATION_NAMES", "identity", "RNN_CELLS"]),
        ("Inspecting a model", ["summary", "ModelSummary", "LayerSummary", "count_params"]),
    ],
    "jdl.losses": [
        ("Losses", ["mse", "mae", "binary_cross_entropy", "cross_entropy"]),
        ("Parameter penalties", ["l1", "l2", "kernel_mask"]),
        ("Losses by name", ["get", "LOSSES", "LOSS_ALIASES"]),
    ],
    "jdl.metrics": [
        (
            "Classification",
            [
                "accuracy",
                "top_k_accuracy",
                "binary_accuracy",
                "confusion_matrix",
                "precision",
                "recall",
                "f1",
            ],
        ),
        ("Regression", ["mean_absolute_error", "root_mean_squared_error"]),
        ("Metrics by name", ["get", "METRICS"]),
    ],
    "jdl.data": [
        (
            "Loading datasets",
            ["load", "dataset_info", "DatasetInfo", "resolve_data_dir", "BUNDLED"],
        ),
        ("Sources", ["SupervisedSource", "ArraySource", "from_arrays", "as_source", "as_arrays"]),
        ("Batching", ["batches", "epoch_order"]),
        ("Augmentation", ["random_crop", "random_flip", "gaussian_noise"]),
        ("Synthetic data", ["coffee_demand"]),
        (
            "Errors",
            [
                "UnknownDatasetError",
                "UnknownSplitError",
                "DatasetNotPreparedError",
                "RemoteCodeError",
            ],
        ),
    ],
    "jdl.train": [
        (
            "Training loop",
            ["fit", "evaluate", "predict", "History", "default_metrics", "metric_mode"],
        ),
        (
            "State and steps",
            [
                "TrainState",
                "create_state",
                "state_from_variables",
                "train_step",
                "eval_step",
                "model_input",
                "model_kwargs",
                "MODEL_INPUTS",
                "MASK_KEY",
            ],
        ),
        (
            "Data parallelism",
            [
                "parallelize",
                "ParallelStep",
                "STRATEGIES",
                "default_strategy",
                "data_mesh",
                "bind_axis_name",
                "fsdp_mesh",
                "state_shardings",
                "shard_state",
                "fsdp_spec",
                "per_device_bytes",
                "FSDP_MIN_SIZE",
            ],
        ),
        (
            "Optimisers and schedules",
            [
                "optimizer",
                "as_optimizer",
                "OPTIMIZERS",
                "make_schedule",
                "SCHEDULES",
                "learning_rate",
                "ema_params",
                "averaged_params",
            ],
        ),
        ("Mixed precision", ["PRECISIONS", "dynamic_loss_scale", "LossScaleState"]),
        ("Sweeps and searches", ["sweep", "search", "SweepResult"]),
        ("Compilation cache", ["enable_compile_cache", "compile_cache_dir"]),
        ("Callbacks", ["callbacks", "Checkpoint", "BestCheckpoint"]),
        ("Saving a model for inference", ["save_model", "load_model", "read_model_info"]),
        ("Checkpoints", ["save_state", "restore_state", "latest_step"]),
        (
            "Errors",
            [
                "NonFiniteError",
                "CheckpointCorruptError",
                "CheckpointMismatchError",
                "ResumeMismatchError",
                "ModelFileError",
            ],
        ),
    ],
    "jdl.train.callbacks": [
        ("Base classes", ["Callback", "Run"]),
        (
            "Callbacks",
            [
                "EarlyStopping",
                "ReduceLROnPlateau",
                "TerminateOnNaN",
                "LearningRateLogger",
                "TensorBoard",
                "EMA",
                "Checkpoint",
                "BestCheckpoint",
            ],
        ),
    ],
    "jdl.analysis": [
        ("Diagnosis in one call", ["diagnose", "Diagnosis", "Finding", "STAGES"]),
        (
            "Gradient flow",
            [
                "gradient_flow",
                "GradientFlow",
                "LayerReport",
                "layer_gradients",
                "LayerGradient",
                "gradient_norms",
                "VERDICTS",
                "VANISHING_RATIO",
                "EXPLODING_RATIO",
                "DEAD_FRACTION",
                "SATURATED_FRACTION",
            ],
        ),
        ("Activations", ["activation_stats", "ActivationStats", "LayerActivations"]),
        ("Monitoring training", ["TrainingMonitor", "MONITOR_STATS", "UPDATE_RATIO_LIMIT"]),
        (
            "Signal propagation",
            [
                "signal_propagation",
                "SignalPropagation",
                "channel_stats",
                "jacobian_singular_values",
            ],
        ),
        ("Initialisation", ["compare_inits", "InitComparison"]),
        ("Learning rate", ["lr_find", "LRFinder"]),
        ("Sanity checks and fast runs", ["overfit_check", "OverfitResult", "scan_fit", "ScanRun"]),
    ],
    "jdl.pretrained": [
        (
            "Loading and saving",
            ["load", "Pretrained", "LoadReport", "load_jdl", "save", "detect_format"],
        ),
        ("Checkpoint hub", ["hub", "HubEntry", "available", "download", "register"]),
        (
            "Other frameworks",
            [
                "from_torchvision",
                "from_timm",
                "from_keras",
                "read_state_dict",
                "read_keras_weights",
                "resnet_from_state_dict",
                "vgg_from_state_dict",
                "torch_resnet_to_jdl",
                "torch_vgg_to_jdl",
                "jdl_resnet_to_torch",
                "jdl_vgg_to_torch",
                "preprocess",
            ],
        ),
        (
            "Transfer learning",
            [
                "replace_head",
                "finetune_state",
                "freeze",
                "trainable_mask",
                "is_trainable",
                "FreezeBatchNorm",
            ],
        ),
        ("Weight trees", ["flatten", "unflatten"]),
        ("Errors", ["WeightMismatchError", "WeightFileError", "ChecksumError"]),
    ],
}

#: ``"package.name"`` -> its summary in the tables, for names without a docstring.
SUMMARIES: dict[str, str] = {
    "jdl.__version__": "The version of the installed jdl.",
    "jdl.nn": "Models (``MLP``, ``CNN``, ``VGG``, ``RNNClassifier``, ``ResNet``, "
    "``CifarResNet``), initialisers and activations by name.",
    "jdl.losses": "``mse``, ``mae``, ``binary_cross_entropy``, ``cross_entropy``, ``l1`` / ``l2``.",
    "jdl.metrics": "``accuracy`` and friends, computed on the device.",
    "jdl.data": "``load``, ``batches``, the bundled datasets, augmentation.",
    "jdl.train": "``TrainState``, pure steps, ``parallelize``, ``fit`` / ``evaluate``, "
    "callbacks, checkpoints, optimisers.",
    "jdl.analysis": "Gradient flow, activation statistics, signal propagation, LR finder, "
    "overfit check.",
    "jdl.pretrained": "Weight files in and out, torchvision / Keras mapping, head surgery, "
    "freezing.",
}
