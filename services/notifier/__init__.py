"""notifier: runs the journeys and raises the alerts people act on (cart abandonment, complaints, failed
payments), and delivers each once."""
