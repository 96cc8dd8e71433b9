"""CRM connectors: records in as events, flags and tasks out."""
