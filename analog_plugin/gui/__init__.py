"""Desktop user interface (dock panel, installer and diagnostics dialogs): thin glue over core."""
