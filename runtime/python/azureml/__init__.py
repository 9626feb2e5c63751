"""Compatibility package written for this project's scoring runtime.

Only the small parts of the Azure ML v1 SDK that entry scripts use at scoring time are provided:
``azureml.core.model.Model.get_model_path`` and ``azureml.contrib.services`` (``rawhttp``, ``AMLRequest``,
``AMLResponse``). Standard library only.
"""
