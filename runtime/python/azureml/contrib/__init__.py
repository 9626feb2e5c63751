"""azureml.contrib (scoring-time subset)."""
