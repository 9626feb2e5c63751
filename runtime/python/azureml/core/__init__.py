"""azureml.core (scoring-time subset)."""
