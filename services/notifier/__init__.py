"""notifier: raises the alerts people act on (cart abandonment, complaints) and delivers each once."""
