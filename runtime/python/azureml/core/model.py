"""``Model.get_model_path`` as the Azure ML v1 scoring container resolves it.

The runtime sets ``AZUREML_MODEL_DIR`` to the deployed model folder. Two layouts are understood:

* one model: ``$AZUREML_MODEL_DIR`` holds the registered file(s) directly
  (``get_model_path(any_name)`` returns the single file, or the folder when it holds several entries);
* several models: ``$AZUREML_MODEL_DIR/<name>/<version>/...`` (``get_model_path(name, version)``; the
  highest version when ``version`` is None).
"""
import os


class ModelNotFoundException(Exception):
    pass


def _single_entry_or_dir(folder):
    entries = [e for e in sorted(os.listdir(folder)) if not e.startswith(".")]
    if len(entries) == 1:
        return os.path.join(folder, entries[0])
    return folder


def _version_dirs(folder):
    out = []
    for entry in os.listdir(folder):
        if entry.isdigit() and os.path.isdir(os.path.join(folder, entry)):
            out.append(int(entry))
    return sorted(out)


class Model(object):
    """Scoring-time subset of ``azureml.core.model.Model``."""

    @staticmethod
    def get_model_path(model_name, version=None, _workspace=None):
        base = os.environ.get("AZUREML_MODEL_DIR")
        if not base:
            raise ModelNotFoundException(
                "AZUREML_MODEL_DIR is not set: start the scoring runtime with --model-dir <folder>")
        if not os.path.exists(base):
            raise ModelNotFoundException(
                "Model folder {0} (AZUREML_MODEL_DIR) does not exist".format(base))
        named = os.path.join(base, model_name)
        if os.path.exists(named):
            if os.path.isfile(named):
                return named
            versions = _version_dirs(named)
            if version is not None:
                candidate = os.path.join(named, str(version))
                if not os.path.isdir(candidate):
                    raise ModelNotFoundException(
                        "Model {0} version {1} not found under {2}; available versions: {3}".format(
                            model_name, version, base, versions or "none"))
                return _single_entry_or_dir(candidate)
            if versions:
                return _single_entry_or_dir(os.path.join(named, str(versions[-1])))
            return named
        # One model deployed: the folder is the model itself.
        if os.path.isfile(base):
            return base
        return _single_entry_or_dir(base)
